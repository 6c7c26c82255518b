"""alert templates: saved alert texts per topic, in German, English and Polish

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:00:00.000000

Coordinators keep the texts of recurring warnings ("tarpaulin slashing series on the A1")
and start an alert from one, in the console or with /alert_template in the chat. A
template holds a coordinator's words and who saved it last (a user id), nothing else.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_templates")),
    )


def downgrade() -> None:
    op.drop_table("alert_templates")
