"""The outbox worker: sends queued messages through one transport, within its limits.

Rows are written before anything is sent (by the core, in the transaction that caused
them). The worker claims due rows — on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so
several instances never take the same row — sends them through a `Sender`, and records
the result. A claim is a lease: a row left 'sending' past it (its worker died) is due
again, for any instance; on SQLite, where one instance runs, a restart takes such rows
back at once. Flood-control answers reschedule a row; transient errors retry with
exponential backoff; a person who blocked the bot is marked inactive and skipped.

A row that is done — sent, failed for good, expired — loses its text (`payload`) in the
same write: what remains is what receipts and duplicate checks need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.events import Reply
from bot.core.faults import transient
from bot.delivery.pacing import ChatLimiter, Limits
from bot.logs import ACTIVITY
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage, User, utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
# Longer than a claimed batch can take (flood waits included): another instance's rows in
# flight are never taken from it, and a dead instance's rows are sent after this.
LEASE_SECONDS = 600.0
# Batches being sent at once: the next is claimed while one is sent, so the platform's
# limit is used without gaps. At most this many batches are in flight at a crash.
BATCHES_IN_FLIGHT = 2
RECORD_ATTEMPTS = 12  # about half a minute of a busy database
# A chat of the coordinators that cannot be reached (the bot not in the room yet, a group
# that blocked it) is tried again at this pace: an operator may fix it meanwhile.
UNREACHABLE_RETRY_SECONDS = 300.0
# Told about an undeliverable row: (row, reason). Only rows without a person (deliveries
# to the coordinators) are reported; a person who blocked the bot is simply marked.
Undeliverable = Callable[["OutboxMessage", str], Awaitable[None]]


class RetryLater(Exception):
    """The platform asked us to wait (Telegram RetryAfter, Matrix M_LIMIT_EXCEEDED)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = seconds


class Unreachable(Exception):
    """The person blocked the bot or left: never try them again."""


class TransientFailure(Exception):
    """A network error or a 5xx: try again later."""


class Sender(Protocol):
    """What a transport offers the outbox worker."""

    transport: str

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        """Send the replies to a chat; return the platform id of the last message."""


class OutboxWorker:
    """Drains the outbox of one transport."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        limits: Limits | None = None,
        batch: int = 50,
        lease_seconds: float = LEASE_SECONDS,
        on_undeliverable: Undeliverable | None = None,
    ) -> None:
        self.sessions = sessions
        self.sender = sender
        self.on_undeliverable = on_undeliverable
        self.lease = timedelta(seconds=lease_seconds)
        # Share the transport's limiter, so direct replies and deliveries count together.
        shared = getattr(sender, "limiter", None)
        self.limiter = (
            shared if isinstance(shared, ChatLimiter) else ChatLimiter(limits or Limits())
        )
        # A sender that acquires per message part itself (Telegram) is not limited twice.
        self.limits_itself = bool(getattr(sender, "limits_itself", False))
        self.batch = batch

    async def claim(self) -> list[OutboxMessage]:
        """Take due rows (and rows whose lease ran out) and mark them 'sending', leased."""
        async with transaction(self.sessions) as session:
            now = utcnow()
            rows: list[OutboxMessage] = []
            # First rows whose lease ran out (their worker died), then queued ones: one
            # status at a time, so that the index (status, transport, id) gives them in order.
            for status in ("sending", "queued"):
                query = (
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.status == status,
                        OutboxMessage.transport == self.sender.transport,
                        OutboxMessage.next_attempt_at <= now,
                    )
                    .order_by(OutboxMessage.id)
                    .limit(self.batch - len(rows))
                )
                if session.get_bind().dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                rows.extend((await session.scalars(query)).all())
                if len(rows) >= self.batch:
                    break
            if rows:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_([row.id for row in rows]))
                    .values(status="sending", next_attempt_at=now + self.lease)
                )
            return rows

    async def run_once(self) -> int:
        """Send what is due now; return how many rows were handled."""
        return await self._send_batch(await self.claim())

    async def _send_batch(self, rows: Sequence[OutboxMessage]) -> int:
        outcomes = _Outcomes()
        try:
            await asyncio.gather(*(self._send(row, outcomes) for row in rows))
        finally:
            # One transaction for the batch's results, not one per message.
            await outcomes.record(self.sessions)
        return len(rows)

    async def run_forever(self, idle: float = 0.5) -> None:
        """Claim and send until cancelled, `BATCHES_IN_FLIGHT` batches at a time."""
        await self.recover()
        sending: set[asyncio.Task[int]] = set()
        try:
            while True:
                if len(sending) >= BATCHES_IN_FLIGHT:
                    sending = await _first_done(sending)
                try:
                    rows = await self.claim()
                except Exception:
                    log.exception("outbox worker for %s failed; retrying", self.sender.transport)
                    rows = []
                if rows:
                    sending.add(asyncio.create_task(self._send_batch(rows)))
                elif sending:
                    sending = await _first_done(sending)
                else:
                    await asyncio.sleep(idle)
        finally:
            for task in sending:
                task.cancel()
            await asyncio.gather(*sending, return_exceptions=True)

    async def recover(self) -> None:
        """Rows left 'sending' by a crash are queued again (the in-flight window).

        Only on SQLite, where this is the only instance: on PostgreSQL another instance may
        be sending them right now; a dead instance's rows fall due when their lease ends."""
        async with transaction(self.sessions) as session:
            if session.get_bind().dialect.name == "postgresql":
                return
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.transport == self.sender.transport,
                    OutboxMessage.status == "sending",
                )
                .values(status="queued", next_attempt_at=utcnow())
            )

    async def _send(self, row: OutboxMessage, outcomes: _Outcomes) -> None:
        # Alerts carry an expiry: past it the row is marked "expired", never sent late.
        if row.expires_at is not None and row.expires_at <= utcnow():
            outcomes.expired.append({"id": row.id, "status": "expired", "payload": []})
            return
        replies = [Reply.from_json(item) for item in row.payload]
        if not self.limits_itself:
            await self.limiter.acquire(row.chat_id)
        try:
            platform_id = await self.sender.deliver(row.chat_id, replies)
        except RetryLater as wait:
            # Pause every sender sharing this limiter: the platform counts all our requests.
            self.limiter.pause(wait.seconds)
            self._reschedule(row, wait.seconds, "flood control", False, outcomes)
        except Unreachable as exc:
            if row.user_id is None:
                await self._coordinators_unreachable(row, str(exc), outcomes)
            else:
                await self._unreachable(row, str(exc))
        except TransientFailure as exc:
            self._reschedule(row, min(300.0, 2.0**row.attempts), str(exc), True, outcomes)
        except Exception as exc:
            log.exception("outbox %s: unexpected error", row.id)
            self._reschedule(row, min(300.0, 2.0**row.attempts), repr(exc), True, outcomes)
        else:
            ACTIVITY.delivery(delivered=1)
            outcomes.sent.append(
                {
                    "id": row.id,
                    "status": "sent",
                    "sent_at": utcnow(),
                    "platform_message_id": platform_id,
                    "payload": [],
                }
            )

    def _reschedule(
        self, row: OutboxMessage, delay: float, why: str, count: bool, outcomes: _Outcomes
    ) -> None:
        attempts = row.attempts + (1 if count else 0)
        status = "failed" if attempts >= MAX_ATTEMPTS else "queued"
        outcome = {
            "id": row.id,
            "status": status,
            "attempts": attempts,
            "last_error": why[:255],
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
        }
        if status == "failed":
            log.warning("outbox %s: %s to %s given up after %d attempts", row.id, row.kind,
                        row.transport, attempts)  # fmt: skip
            ACTIVITY.delivery(failed=1)
            outcomes.failed.append({**outcome, "payload": []})  # given up: the text goes
        else:
            outcomes.rescheduled.append(outcome)
        log.info("outbox %s: %s, status %s", row.id, why[:60], status)

    async def _coordinators_unreachable(
        self, row: OutboxMessage, why: str, outcomes: _Outcomes
    ) -> None:
        """A chat of the coordinators refused the message: logged (no content), tried again
        later, and the admins told once."""
        log.warning(
            "outbox %s: %s for %s chat %s not delivered (%s); attempt %d",
            row.id,
            row.kind,
            row.transport,
            row.chat_id,
            why[:120],
            row.attempts + 1,
        )
        self._reschedule(row, UNREACHABLE_RETRY_SECONDS, why, True, outcomes)
        if self.on_undeliverable is not None and row.kind == "report":
            try:
                await self.on_undeliverable(row, why)
            except Exception:
                log.exception("outbox %s: telling the admins failed", row.id)

    async def _unreachable(self, row: OutboxMessage, why: str) -> None:
        ACTIVITY.delivery(failed=1)
        async with transaction(self.sessions) as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(status="failed", last_error=why[:255], payload=[])
            )
            if row.user_id is not None:
                await session.execute(
                    update(User).where(User.id == row.user_id).values(active=False)
                )
                # Whatever else waits for this person would fail the same way.
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.user_id == row.user_id, OutboxMessage.status == "queued")
                    .values(status="failed", last_error="unreachable", payload=[])
                )


async def _first_done(tasks: set[asyncio.Task[int]]) -> set[asyncio.Task[int]]:
    """Wait for one of the batches to finish; returns those still running."""
    done, running = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox batch failed", exc_info=task.exception())
    return running


@dataclass
class _Outcomes:
    """What became of a claimed batch, written in one transaction when it is done."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    rescheduled: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    expired: list[dict[str, Any]] = field(default_factory=list)

    async def record(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        kinds = (self.sent, self.rescheduled, self.failed, self.expired)
        groups = [group for group in kinds if group]
        if not groups:
            return
        # What went out must be recorded, or the rows would be sent again after their
        # lease: a busy database is waited for (asyncio sleeps, never on the loop).
        for attempt in range(RECORD_ATTEMPTS):
            try:
                async with transaction(sessions) as session:
                    for group in groups:
                        # ORM bulk UPDATE by primary key: one executemany per kind of outcome.
                        await session.execute(update(OutboxMessage), group)
                return
            except Exception as exc:
                if not transient(exc) or attempt + 1 == RECORD_ATTEMPTS:
                    raise
                await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
