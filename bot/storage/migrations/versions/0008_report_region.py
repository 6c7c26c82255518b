"""reports: the reporter's region when they sent it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:10:00.000000

The console's region filter and the statistics counted a report under its reporter's
region of today: a driver who moved from Köln to Münster took all their reports along,
and a reporter who erased themselves took the region of theirs. A report now keeps the
region it was sent from; reports already stored get their reporter's present one (the
best there is), and those of erased reporters stay without.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch_op:
        batch_op.add_column(sa.Column("region", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE reports SET region = "
        "(SELECT users.region FROM users WHERE users.id = reports.user_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch_op:
        batch_op.drop_column("region")
