"""Exactly once, in the event's own transaction: the platform event ids already handled,
and the lock that serialises one person's events across instances.

`begin(connection, transport, platform_id, event_id)`, the first statement of an event's
transaction, does both:

- it takes a transaction-scoped lock on the person: on PostgreSQL an advisory lock
  (`pg_advisory_xact_lock`), so two instances never both build on the same dialogue state;
  on SQLite, which one instance uses, the process's own per-person lock (the caller's) is
  the lock;
- it records the platform update or event id, if there is one, and returns False for a
  repeat (a webhook retried, a sync replayed after a crash, a second instance). Recorded in
  the transaction that stores the event's effects, so a crash before the commit records
  nothing and the event is handled when it comes again; after the commit it is never
  handled twice.

On PostgreSQL both are one statement (one round trip of the handful an event takes); the
lock is taken before the id is inserted, and the person is read by the next statement,
after the lock.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.storage.models import HandledEvent, utcnow

_HANDLED: Table = HandledEvent.__table__  # type: ignore[assignment]
# The first key of the two-key advisory locks on people ("sbpe"): apart from the one-key
# locks of the scheduler and the migrations, and from other applications' two-key locks.
PERSON_LOCK_SPACE = int.from_bytes(b"sbpe", "big", signed=True)
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")


def _claim(insert_for: object) -> object:
    statement = insert_for(_HANDLED).values(  # type: ignore[operator]
        transport=bindparam("transport"), event_id=bindparam("event_id"), at=bindparam("at")
    )
    return statement.on_conflict_do_nothing().returning(_HANDLED.c.event_id)


def _lock_and_claim() -> object:
    """PostgreSQL: the lock, then the id, in one INSERT … SELECT FROM (the lock)."""
    columns = _HANDLED.c
    locked = select(func.pg_advisory_xact_lock(bindparam("space"), bindparam("key"))).subquery()
    row = select(
        bindparam("transport", type_=columns.transport.type),
        bindparam("event_id", type_=columns.event_id.type),
        bindparam("at", type_=columns.at.type),
    ).select_from(locked)
    statement = pg_insert(_HANDLED).from_select(["transport", "event_id", "at"], row)
    return statement.on_conflict_do_nothing().returning(columns.event_id)


_SQLITE_CLAIM = _claim(sqlite_insert)
_PG_LOCK_AND_CLAIM = _lock_and_claim()


async def begin(
    connection: AsyncConnection, transport: str, platform_id: str, event_id: str | None
) -> bool:
    """Lock the person and record the event id (see the module's doc); False when the
    event was handled before."""
    postgres = connection.dialect.name == "postgresql"
    lock = {"space": PERSON_LOCK_SPACE, "key": person_key(transport, platform_id)}
    if not event_id:
        if postgres:
            await connection.execute(_LOCK, lock)
        return True
    values = {"transport": transport, "event_id": event_id[:255], "at": utcnow()}
    if postgres:
        found = await connection.scalar(_PG_LOCK_AND_CLAIM, {**values, **lock})  # type: ignore[call-overload]
    else:
        found = await connection.scalar(_SQLITE_CLAIM, values)  # type: ignore[call-overload]
    return found is not None


def person_key(transport: str, platform_id: str) -> int:
    """A signed 32-bit key for the person (a shared key only serialises two people)."""
    digest = hashlib.blake2b(f"{transport}\0{platform_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def forget_handled(session: AsyncSession, before: datetime) -> int:
    """Drop records of events handled before `before` (platforms repeat within hours)."""
    result = await session.execute(delete(HandledEvent).where(HandledEvent.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
