"""Exactly once, in the event's own transaction: the platform event ids already handled,
and the lock that serialises one person's events across instances.

- `claim(connection, transport, event_id)` records a platform update or event id; it
  returns False for a repeat (a webhook retried, a sync replayed after a crash, a second
  instance). Recorded in the transaction that stores the event's effects, so a crash before
  the commit records nothing and the event is handled when it comes again; after the
  commit it is never handled twice.
- `lock_person(connection, transport, platform_id)` takes a transaction-scoped lock on the
  person: on PostgreSQL an advisory lock (`pg_advisory_xact_lock`), so two instances never
  both build on the same dialogue state; on SQLite, which one instance uses, the process's
  own per-person lock (the caller's) is the lock, and this does nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, text
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


_CLAIM = {"postgresql": _claim(pg_insert), "sqlite": _claim(sqlite_insert)}


async def claim(connection: AsyncConnection, transport: str, event_id: str) -> bool:
    """Record that this event is being handled; False when it was handled before."""
    statement = _CLAIM[connection.dialect.name]
    values = {"transport": transport, "event_id": event_id[:255], "at": utcnow()}
    found = await connection.scalar(statement, values)  # type: ignore[call-overload]
    return found is not None


def person_key(transport: str, platform_id: str) -> int:
    """A signed 32-bit key for the person (a shared key only serialises two people)."""
    digest = hashlib.blake2b(f"{transport}\0{platform_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_person(connection: AsyncConnection, transport: str, platform_id: str) -> None:
    """Hold the person's lock until the transaction ends (PostgreSQL; see module doc)."""
    if connection.dialect.name == "postgresql":
        key = person_key(transport, platform_id)
        await connection.execute(_LOCK, {"space": PERSON_LOCK_SPACE, "key": key})


async def forget_handled(session: AsyncSession, before: datetime) -> int:
    """Drop records of events handled before `before` (platforms repeat within hours)."""
    result = await session.execute(delete(HandledEvent).where(HandledEvent.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
