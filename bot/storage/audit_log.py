"""What the console's admin pages read: the audit log, filtered, with who did each thing
(their transport and id as the bot knows them). The log holds no personal content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEntry, User

LIMIT = 500


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """Empty values filter nothing; `actor` is `transport:id`, `subject` a part of it."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


def _where(filters: AuditFilters) -> list[Any]:
    found: list[Any] = []
    if filters.action:
        found.append(AuditEntry.action == filters.action)
    if filters.subject:
        found.append(AuditEntry.subject.contains(filters.subject, autoescape=True))
    if filters.actor:
        transport, _, platform_id = filters.actor.partition(":")
        found.extend((User.transport == transport, User.platform_id == platform_id))
    if filters.since is not None:
        found.append(AuditEntry.at >= filters.since)
    if filters.until is not None:
        found.append(AuditEntry.at < filters.until)
    return found


async def entries(
    session: AsyncSession, filters: AuditFilters, limit: int = LIMIT
) -> list[AuditRow]:
    """The newest entries matching `filters` (at most `limit`)."""
    rows = await session.execute(
        select(AuditEntry, User.transport, User.platform_id)
        .outerjoin(User, User.id == AuditEntry.actor_id)
        .where(*_where(filters))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return [
        AuditRow(
            entry.id,
            entry.at,
            f"{t}:{p}" if t else "",
            entry.action,
            entry.subject,
            dict(entry.details),
        )
        for entry, t, p in rows.all()
    ]


async def actions(session: AsyncSession) -> list[str]:
    """Every action the log holds, for the filter."""
    found = await session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    return [str(action) for action in found.all()]
