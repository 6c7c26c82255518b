"""What the console's alert pages read: the latest alerts with their receipts, in all and
per transport, and how many people an audience reaches. The counts are those of
`/broadcast_status` (`bot.storage.alerts.status_counts`): the chat and the console never
count differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.alerts import count_recipients, status_counts
from bot.storage.models import AlertTemplate, Broadcast, OutboxMessage, utcnow

LIST_LIMIT = 50
# What a receipt can say, in the order the console shows it.
RECEIPTS = ("queued", "sent", "failed", "expired", "acknowledged")


@dataclass(frozen=True, slots=True)
class Audience:
    """Who an alert is for: the compose page's choices (empty = all)."""

    topic: str
    roles: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    transports: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert as the console lists it, with its receipts."""

    id: int
    topic: str
    severity: str
    status: str
    send_at: datetime
    expires_at: datetime
    texts: dict[str, str]
    language: str
    counts: dict[str, int]
    # transport -> receipts (without "acknowledged", which belongs to a person)
    by_transport: dict[str, dict[str, int]]

    @property
    def total(self) -> int:
        return sum(self.counts[key] for key in ("queued", "sent", "failed", "expired"))

    @property
    def done(self) -> int:
        """Messages that will not change any more: delivered, failed or expired."""
        return self.total - self.counts["queued"]

    @property
    def percent(self) -> int:
        return 100 if not self.total else round(100 * self.done / self.total)

    @property
    def cancellable(self) -> bool:
        return self.status == "scheduled"


async def reach(session: AsyncSession, audience: Audience) -> int:
    """How many people an alert with this audience would reach now (the chat's preview
    count: the same query)."""
    probe = Broadcast(
        topic=audience.topic,
        roles=list(audience.roles),
        regions=list(audience.regions),
        transports=list(audience.transports),
    )
    return await count_recipients(session, probe)


async def per_transport(session: AsyncSession, broadcast_id: int) -> dict[str, dict[str, int]]:
    """Outbox rows per transport and receipt; rows past the alert's validity that still
    wait count as expired (as in `status_counts`)."""
    now = utcnow()
    rows = await session.execute(
        select(OutboxMessage.transport, OutboxMessage.status, OutboxMessage.expires_at)
        .where(OutboxMessage.broadcast_id == broadcast_id)
        .order_by(OutboxMessage.transport)
    )
    found: dict[str, dict[str, int]] = {}
    for transport, status, expires_at in rows.all():
        counts = found.setdefault(str(transport), dict.fromkeys(RECEIPTS[:-1], 0))
        key = "queued" if status == "sending" else str(status)
        if key == "queued" and expires_at is not None and expires_at <= now:
            key = "expired"
        counts[key] = counts.get(key, 0) + 1
    return found


async def alert_row(session: AsyncSession, item: Broadcast) -> AlertRow:
    return AlertRow(
        id=item.id,
        topic=item.topic,
        severity=item.severity,
        status=item.status,
        send_at=item.send_at,
        expires_at=item.expires_at,
        texts={str(k): str(v) for k, v in item.texts.items()},
        language=item.language,
        counts=await status_counts(session, item.id),
        by_transport=await per_transport(session, item.id),
    )


async def latest_alerts(
    session: AsyncSession, status: str = "", limit: int = LIST_LIMIT
) -> list[AlertRow]:
    """The latest alerts (of one state, when given), newest first, each with its receipts."""
    query = select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)
    if status:
        query = query.where(Broadcast.status == status)
    found = (await session.scalars(query)).all()
    return [await alert_row(session, item) for item in found]


async def alerts_by_status(session: AsyncSession) -> dict[str, int]:
    """How many alerts are in each state (scheduled, sending, sent, cancelled, expired)."""
    rows = await session.execute(select(Broadcast.status, func.count()).group_by(Broadcast.status))
    return {str(status): int(count) for status, count in rows.all()}


async def alert(session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    return await session.get(Broadcast, broadcast_id)


async def templates(session: AsyncSession) -> list[AlertTemplate]:
    """The saved alert templates, by name."""
    return list((await session.scalars(select(AlertTemplate).order_by(AlertTemplate.name))).all())


async def template(session: AsyncSession, template_id: int) -> AlertTemplate | None:
    return await session.get(AlertTemplate, template_id)
