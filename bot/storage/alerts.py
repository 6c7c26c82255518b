"""Alert queries: who receives an alert, queueing it (batched, resumable, never twice per
person), acknowledgements, receipts, and the alerts whose time has come.

Recipients are read in keyset pages (`users.id > cursor ORDER BY id LIMIT batch`), so a
fan-out to many thousands never holds them all in memory. Every page is one transaction
that inserts outbox rows with `dedupe_key = "b<id>:u<user>"` (conflicts ignored) and moves
the broadcast's cursor: a fan-out cut off by a crash resumes, and a repeated one queues
nothing twice.

What a person reads is the feature's business: the caller hands in `render`, the alert's
messages (as stored in the outbox: replies as JSON) in one language. The chat and the
console read the same counts from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.db import transaction
from bot.storage.models import (
    Acknowledgement,
    AlertSubscription,
    Broadcast,
    OutboxMessage,
    User,
    utcnow,
)

# An alert's messages in one language, as outbox payload (replies as JSON).
Render = Callable[[Broadcast, str], list[dict[str, Any]]]

TOPICS = ("cargo_theft", "robbery", "fuel_theft", "taxi", "general")
SEVERITIES = ("info", "warning", "urgent")
BATCH = 500
# Default topics per role (plus "general" for everyone), used until a person chooses.
ROLE_TOPICS: dict[str, tuple[str, ...]] = {
    "truck_driver": ("cargo_theft", "fuel_theft"),
    "dispatcher": ("cargo_theft",),
    "haulage_company": ("cargo_theft", "fuel_theft"),
    "taxi_driver": ("taxi", "robbery"),
    "station_staff": ("robbery", "fuel_theft"),
    "police_officer": ("cargo_theft", "robbery", "fuel_theft", "taxi"),
    "other": (),
}


def default_topics(role: str | None) -> list[str]:
    wanted = {*ROLE_TOPICS.get(role or "", ()), "general"}
    return [topic for topic in TOPICS if topic in wanted]


def effective(
    user: User, subscription: AlertSubscription | None
) -> tuple[bool, list[str], list[str]]:
    """(muted, topics, regions) of a person: their choice, or defaults from role and region."""
    if subscription is None:
        return False, default_topics(user.role), [user.region] if user.region else []
    return subscription.muted, list(subscription.topics), list(subscription.regions)


def matches(broadcast: Broadcast, user: User, subscription: AlertSubscription | None) -> bool:
    """Subscribed to the topic and to one of the alert's regions (audience roles and
    transports are filtered in SQL)."""
    muted, topics, regions = effective(user, subscription)
    if muted or broadcast.topic not in topics:
        return False
    return not broadcast.regions or bool(set(regions) & set(broadcast.regions))


async def recipients(
    session: AsyncSession, broadcast: Broadcast, after: int = 0, batch: int = BATCH
) -> AsyncIterator[list[User]]:
    """Matching people, one keyset page at a time (pages may be short after filtering)."""
    cursor = after
    while True:
        page = await recipient_page(session, broadcast, cursor, batch)
        if page is None:
            return
        cursor, users = page
        yield users


async def recipient_page(
    session: AsyncSession, broadcast: Broadcast, after: int, batch: int = BATCH
) -> tuple[int, list[User]] | None:
    """The page of candidates after user id `after`: (last id looked at, matching users)."""
    query = (
        select(User, AlertSubscription)
        .outerjoin(AlertSubscription, AlertSubscription.user_id == User.id)
        .where(User.id > after, User.active.is_(True), User.consent_at.is_not(None))
        .order_by(User.id)
        .limit(batch)
    )
    if broadcast.roles:
        query = query.where(User.role.in_(broadcast.roles))
    if broadcast.transports:
        query = query.where(User.transport.in_(broadcast.transports))
    rows = (await session.execute(query)).all()
    if not rows:
        return None
    found = [user for user, sub in rows if user.chat_id and matches(broadcast, user, sub)]
    return rows[-1][0].id, found


async def count_recipients(session: AsyncSession, broadcast: Broadcast) -> int:
    total = 0
    async for users in recipients(session, broadcast):
        total += len(users)
    return total


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def fan_out(
    sessions: async_sessionmaker[AsyncSession],
    render: Render,
    broadcast_id: int,
    batch: int = BATCH,
    max_batches: int | None = None,
    restart: bool = False,
) -> int:
    """Queue the alert for every recipient; return rows inserted by this call.

    `restart` reads from the first user again (the dedupe key keeps it idempotent);
    `max_batches` stops early, as a crash would."""
    inserted = 0
    pages = 0
    while max_batches is None or pages < max_batches:
        async with transaction(sessions) as session:
            broadcast = await session.get(Broadcast, broadcast_id, with_for_update=True)
            if broadcast is None or broadcast.status == "cancelled":
                return inserted
            if restart:
                broadcast.cursor, restart = 0, False
            elif broadcast.status == "sent":
                return inserted
            queued = await fan_out_page(session, render, broadcast, batch)
            if queued is None:
                return inserted
            inserted += queued
        pages += 1
    return inserted


async def fan_out_page(
    session: AsyncSession, render: Render, broadcast: Broadcast, batch: int = BATCH
) -> int | None:
    """Queue the next page of recipients and move the cursor; None when all are queued."""
    broadcast.status = "sending"
    page = await recipient_page(session, broadcast, broadcast.cursor, batch)
    if page is None:
        broadcast.status = "sent"
        broadcast.fanned_out_at = broadcast.fanned_out_at or utcnow()
        return None
    broadcast.cursor, users = page
    return await _queue(session, render, broadcast, users, "")


async def _queue(
    session: AsyncSession,
    render: Render,
    broadcast: Broadcast,
    users: list[User],
    suffix: str,
) -> int:
    if not users:
        return 0
    by_lang: dict[str, list[Any]] = {}
    rows = []
    for user in users:
        payload = by_lang.get(user.language)
        if payload is None:
            payload = by_lang[user.language] = render(broadcast, user.language)
        rows.append(
            {
                "transport": user.transport,
                "chat_id": user.chat_id,
                "user_id": user.id,
                "kind": "alert",
                "payload": payload,
                "status": "queued",
                "attempts": 0,
                "last_error": "",
                "broadcast_id": broadcast.id,
                "dedupe_key": f"b{broadcast.id}:u{user.id}{suffix}",
                "created_at": utcnow(),
                "next_attempt_at": utcnow(),
                "platform_message_id": "",
                "expires_at": broadcast.expires_at,
            }
        )
    statement = (
        _insert(session)(OutboxMessage)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def resend_urgent(
    sessions: async_sessionmaker[AsyncSession],
    render: Render,
    after_minutes: int,
    now: datetime | None = None,
) -> int:
    """Queue urgent alerts once more to those who have not pressed 'Understood'."""
    now = now or utcnow()
    queued = 0
    async with transaction(sessions) as session:
        due = (
            await session.scalars(
                select(Broadcast.id).where(
                    Broadcast.severity == "urgent",
                    Broadcast.status == "sent",
                    Broadcast.resent_at.is_(None),
                    Broadcast.fanned_out_at <= now - timedelta(minutes=after_minutes),
                    Broadcast.expires_at > now,
                )
            )
        ).all()
    for broadcast_id in due:
        cursor = 0
        while True:
            async with transaction(sessions) as session:
                broadcast = await session.get(Broadcast, broadcast_id)
                assert broadcast is not None
                acked = select(Acknowledgement.user_id).where(
                    Acknowledgement.broadcast_id == broadcast_id
                )
                users = list(
                    (
                        await session.scalars(
                            select(User)
                            .join(OutboxMessage, OutboxMessage.user_id == User.id)
                            .where(
                                OutboxMessage.broadcast_id == broadcast_id,
                                OutboxMessage.dedupe_key.not_like("%:r"),
                                User.id > cursor,
                                User.active.is_(True),
                                User.id.not_in(acked),
                            )
                            .order_by(User.id)
                            .limit(BATCH)
                        )
                    ).all()
                )
                if not users:
                    broadcast.resent_at = now
                    break
                cursor = users[-1].id
                queued += await _queue(session, render, broadcast, users, ":r")
    return queued


async def acknowledge(session: AsyncSession, broadcast_id: int, user_id: int) -> bool:
    """Record 'Understood'; False when it was recorded before."""
    statement = (
        _insert(session)(Acknowledgement)
        .values(broadcast_id=broadcast_id, user_id=user_id, at=utcnow())
        .on_conflict_do_nothing(index_elements=["broadcast_id", "user_id"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def status_counts(session: AsyncSession, broadcast_id: int) -> dict[str, int]:
    """Outbox rows per status (queued includes in flight), and acknowledgements."""
    counts = {"queued": 0, "sent": 0, "failed": 0, "expired": 0, "acknowledged": 0}
    rows = await session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.broadcast_id == broadcast_id)
        .group_by(OutboxMessage.status)
    )
    for status, count in rows.all():
        key = "queued" if status == "sending" else str(status)
        counts[key] = counts.get(key, 0) + int(count)
    # Rows still waiting past the alert's validity will never go out: expired already.
    stale = await session.scalar(
        select(func.count()).where(
            OutboxMessage.broadcast_id == broadcast_id,
            OutboxMessage.status.in_(("queued", "sending")),
            OutboxMessage.expires_at <= utcnow(),
        )
    )
    counts["queued"] -= int(stale or 0)
    counts["expired"] += int(stale or 0)
    acked = await session.scalar(
        select(func.count())
        .select_from(Acknowledgement)
        .where(Acknowledgement.broadcast_id == broadcast_id)
    )
    counts["acknowledged"] = int(acked or 0)
    return counts


async def due_broadcasts(session: AsyncSession, now: datetime) -> list[int]:
    """Scheduled broadcasts whose time has come, and fan-outs left half done; never one
    that has expired."""
    found = await session.scalars(
        select(Broadcast.id).where(
            Broadcast.status.in_(("scheduled", "sending")),
            Broadcast.send_at <= now,
            Broadcast.expires_at > now,
        )
    )
    return list(found.all())


async def expire_broadcasts(session: AsyncSession, now: datetime) -> int:
    """Alerts past their validity that were still to go out (the bot was down when they
    were due): marked expired, and whatever of them waits in the outbox with them."""
    found = list(
        (
            await session.scalars(
                select(Broadcast.id).where(
                    Broadcast.status.in_(("scheduled", "sending")), Broadcast.expires_at <= now
                )
            )
        ).all()
    )
    if found:
        await session.execute(
            update(Broadcast).where(Broadcast.id.in_(found)).values(status="expired")
        )
    # What still waits of any alert past its validity will never go out.
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.broadcast_id.is_not(None),
            OutboxMessage.status == "queued",
            OutboxMessage.expires_at <= now,
        )
        .values(status="expired")
    )
    return len(found)


async def expire_rows(session: AsyncSession, broadcast_id: int) -> None:
    """Cancelling a broadcast withdraws whatever is still queued."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.broadcast_id == broadcast_id, OutboxMessage.status == "queued")
        .values(status="expired", payload=[])
    )


async def was_queued_for(session: AsyncSession, broadcast_id: int, user_id: int) -> bool:
    """Whether the alert was queued for this person (sent, or still on its way)."""
    found = await session.scalar(
        select(OutboxMessage.id)
        .where(OutboxMessage.broadcast_id == broadcast_id, OutboxMessage.user_id == user_id)
        .limit(1)
    )
    return found is not None
