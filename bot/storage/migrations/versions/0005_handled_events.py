"""handled_events: the platform event ids already handled, for exactly-once handling

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:00:00.000000

Each Telegram update id and Matrix event id is recorded in the transaction that stores the
event's effects; a repeat (a retried webhook, a sync replayed after a crash, a second
instance) is dropped before a handler sees it. The daily purge forgets old ids.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handled_events",
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transport", "event_id", name=op.f("pk_handled_events")),
    )
    with op.batch_alter_table("handled_events", schema=None) as batch_op:
        batch_op.create_index("ix_handled_events_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("handled_events", schema=None) as batch_op:
        batch_op.drop_index("ix_handled_events_at")
    op.drop_table("handled_events")
