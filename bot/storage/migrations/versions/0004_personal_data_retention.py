"""personal data: whose data an outbox row carries, and who holds a stored file

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:00:00.000000

`outbox.subject_user_id` names the person whose data a row carries (a report's copy for
the coordinators carries the reporter's), so that erasing them reaches it. `media_links`
counts the holders of each stored file (reports, exports): a file shared by two reports
(a forwarded photo is byte for byte the same) is deleted with its last holder. Existing
reports get their links here.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import bot.storage.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hashes(answers: Any) -> list[str]:
    """The files of a report's answers: its media list and any voice answers."""
    if not isinstance(answers, dict):
        return []
    found = [item["sha256"] for item in answers.get("media") or [] if "sha256" in item]
    found += [
        value["voice"]["sha256"]
        for value in answers.values()
        if isinstance(value, dict) and isinstance(value.get("voice"), dict)
    ]
    return sorted(set(found))


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_user_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_subject_user_id"), ["subject_user_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_subject_user_id_users"),
            "users",
            ["subject_user_id"],
            ["id"],
            ondelete="CASCADE",
        )
    links = op.create_table(
        "media_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", bot.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bot.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_media_links_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_media_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_links")),
    )
    with op.batch_alter_table("media_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_media_links_report_id"), ["report_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_media_links_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_media_links_user_id"), ["user_id"], unique=False)
    # Every stored report holds its files from the day it was made.
    reports = sa.table(
        "reports",
        sa.column("id", sa.Integer()),
        sa.column("answers", sa.JSON()),
        sa.column("created_at", bot.storage.models.UTCDateTime(timezone=True)),
    )
    stored = op.get_bind().execute(sa.select(reports.c.id, reports.c.answers, reports.c.created_at))
    rows = [
        {"sha256": sha256, "report_id": report_id, "created_at": created_at}
        for report_id, answers, created_at in stored
        for sha256 in _hashes(answers)
    ]
    if rows:
        op.bulk_insert(links, rows)


def downgrade() -> None:
    with op.batch_alter_table("media_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_links_user_id"))
        batch_op.drop_index(batch_op.f("ix_media_links_sha256"))
        batch_op.drop_index(batch_op.f("ix_media_links_report_id"))
    op.drop_table("media_links")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_subject_user_id_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbox_subject_user_id"))
        batch_op.drop_column("subject_user_id")
