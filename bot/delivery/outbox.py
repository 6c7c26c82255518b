"""The outbox worker: sends queued messages through one transport, within its limits.

Rows are written before anything is sent (by the core, in the transaction that caused
them). The worker claims due rows — on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so
several instances never take the same row — sends them through a `Sender`, and records
the result. A claim is a lease: a row left 'sending' past it (its worker died) is due
again, for any instance; on SQLite, where one instance runs, a restart takes such rows
back at once. Flood-control answers reschedule a row; transient errors retry with
exponential backoff; a person who blocked the bot is marked inactive and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from aiolimiter import AsyncLimiter
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.events import Reply
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage, User, utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
# Longer than a claimed batch can take (flood waits included): another instance's rows in
# flight are never taken from it, and a dead instance's rows are sent after this.
LEASE_SECONDS = 600.0


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


@dataclass
class Limits:
    """A platform's flood limits: overall and per chat (messages per second)."""

    overall_per_second: float = 30.0
    per_chat_per_second: float = 1.0


class ChatLimiter:
    """Leaky buckets (aiolimiter): one overall, one per chat."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.overall = AsyncLimiter(max(1.0, limits.overall_per_second), 1.0)
        self.chats: dict[str, AsyncLimiter] = {}
        self.paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request until `seconds` from now: the platform counts them all.

        Unlike PTB's AIORateLimiter up to 22.8 (python-telegram-bot issue 5338), the pause
        is not ended early by other requests finishing; it only ever grows.
        """
        now = asyncio.get_running_loop().time()
        self.paused_until = max(self.paused_until, now + seconds)

    async def _wait_out_pause(self) -> None:
        loop = asyncio.get_running_loop()
        # The pause can grow while we sleep, so look again after each sleep.
        while (remaining := self.paused_until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)

    async def acquire(self, chat_id: str) -> None:
        await self._wait_out_pause()
        chat = self.chats.get(chat_id)
        if chat is None:
            if len(self.chats) > 10_000:
                self.chats.clear()  # old buckets are empty by now; memory stays flat
            chat = self.chats[chat_id] = AsyncLimiter(1, 1.0 / self.limits.per_chat_per_second)
        async with chat:
            await self.overall.acquire()
        # A pause may have begun while this request waited for its slot.
        await self._wait_out_pause()


class OutboxWorker:
    """Drains the outbox of one transport."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        limits: Limits | None = None,
        batch: int = 50,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.sender = sender
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
        rows = await self.claim()
        outcomes = _Outcomes()
        try:
            await asyncio.gather(*(self._send(row, outcomes) for row in rows))
        finally:
            # One transaction for the batch's results, not one per message.
            await outcomes.record(self.sessions)
        return len(rows)

    async def run_forever(self, idle: float = 0.5) -> None:
        await self.recover()
        while True:
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox worker for %s failed; retrying", self.sender.transport)
                handled = 0
            if not handled:
                await asyncio.sleep(idle)

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
            outcomes.expired.append({"id": row.id, "status": "expired"})
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
            await self._unreachable(row, str(exc))
        except TransientFailure as exc:
            self._reschedule(row, min(300.0, 2.0**row.attempts), str(exc), True, outcomes)
        except Exception as exc:
            log.exception("outbox %s: unexpected error", row.id)
            self._reschedule(row, min(300.0, 2.0**row.attempts), repr(exc), True, outcomes)
        else:
            outcomes.sent.append(
                {
                    "id": row.id,
                    "status": "sent",
                    "sent_at": utcnow(),
                    "platform_message_id": platform_id,
                }
            )

    def _reschedule(
        self, row: OutboxMessage, delay: float, why: str, count: bool, outcomes: _Outcomes
    ) -> None:
        attempts = row.attempts + (1 if count else 0)
        status = "failed" if attempts >= MAX_ATTEMPTS else "queued"
        outcomes.rescheduled.append(
            {
                "id": row.id,
                "status": status,
                "attempts": attempts,
                "last_error": why[:255],
                "next_attempt_at": utcnow() + timedelta(seconds=delay),
            }
        )
        log.info("outbox %s: %s, status %s", row.id, why[:60], status)

    async def _unreachable(self, row: OutboxMessage, why: str) -> None:
        async with transaction(self.sessions) as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(status="failed", last_error=why[:255])
            )
            if row.user_id is not None:
                await session.execute(
                    update(User).where(User.id == row.user_id).values(active=False)
                )
                # Whatever else waits for this person would fail the same way.
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.user_id == row.user_id, OutboxMessage.status == "queued")
                    .values(status="failed", last_error="unreachable")
                )


@dataclass
class _Outcomes:
    """What became of a claimed batch, written in one transaction when it is done."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    rescheduled: list[dict[str, Any]] = field(default_factory=list)
    expired: list[dict[str, Any]] = field(default_factory=list)

    async def record(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        groups = [group for group in (self.sent, self.rescheduled, self.expired) if group]
        if not groups:
            return
        async with transaction(sessions) as session:
            for group in groups:
                # ORM bulk UPDATE by primary key: one executemany per kind of outcome.
                await session.execute(update(OutboxMessage), group)
