"""One event, from arrival to commit: the only way a person's state is read and written.

    check the input → flood gate → this process's per-person order
      → transaction: lock the person and claim the platform event id → load → route
                     → write state, log, effects → commit
      (the transaction retried whole while the database is busy)

The person is loaded only after the lock is held, so two events of one person — on one
instance or two — are never both built on the same dialogue state; the event id is
recorded in the same transaction as the effects, so a repeat (a retried webhook, a sync
replayed after a crash) is dropped before any handler sees it, and a crash before the
commit leaves nothing behind. A queued message that reached a person (`delivered`) goes
through the same lock and transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from bot import metrics
from bot.core import inputs
from bot.core.context import Context
from bot.core.events import Choice, Event, EventKind, Reply, merged
from bot.core.faults import transient
from bot.core.i18n import negotiate_language
from bot.core.limits import FloodGate, Verdict
from bot.logs import ACTIVITY
from bot.storage import events as handled
from bot.storage import repos

if TYPE_CHECKING:
    from bot.core.app import Core

log = logging.getLogger(__name__)

# A busy database (another process's write lock, a lost connection) is waited for between
# attempts with asyncio sleeps — 0.1, 0.2, 0.4 … seconds, 6.3 s in all — while other people's
# events and answers go on; then the person gets an apology and nothing is kept.
DB_ATTEMPTS = 7
RETRY_DELAY = 0.1


class Pipeline:
    """Runs events of the Core's routers through one transaction each."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.flood = FloodGate(lambda: core.settings.limits.messages_per_minute)
        self.attempts = DB_ATTEMPTS
        self.retry_delay = RETRY_DELAY
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def handle(self, event: Event) -> list[Reply]:
        """Handle one event; events of one person run one at a time, in order.

        Returns the replies to show: none for a repeat of an event handled before. A person
        over the flood limit is told once what is not read and for how long; until then
        their events are not processed."""
        if not inputs.valid_sender(event):
            log.warning("event from %s with an unusable sender or chat id dropped", event.kind)
            return []
        key = (event.transport, event.user_id)
        door = event.door or event.transport
        verdict = self.flood.admit(key)
        if verdict is not Verdict.ADMIT:
            log.info("%s user throttled on %s (%s)", event.transport, event.kind, verdict.value)
            metrics.THROTTLED.labels(door).inc()
            if verdict is Verdict.DROP:
                return []
            seconds = max(1, round(self.flood.seconds_left(key)))
            return [Reply(self._text(event, "core.throttled", seconds=seconds))]
        event = inputs.normalise(event)
        started = time.perf_counter()
        async with self._lock(key):
            replies = await self._stored(event, self._route)
        metrics.UPDATES.labels(door).inc()
        metrics.LATENCY.labels(door).observe(time.perf_counter() - started)
        if replies is None:
            return [Reply(self._text(event, "core.storage_failed"))]
        return replies

    async def delivered(
        self, transport: str, platform_id: str, chat_id: str, choices: list[Choice]
    ) -> list[Reply]:
        """A queued message (an alert, a notice) reached a person's chat: see
        `Core.delivered`."""

        async def remember(context: Context) -> None:
            if context.flow in self.core.resumers:
                await self.core.resume(context)
            questions = [reply for reply in context.replies if reply.choices]
            context.replies = merged(context.replies)
            context.state.choices = [
                *(inputs.shown(questions[-1].choices) if questions else []),
                *inputs.shown(choices, numbered=not context.flow),
                *(inputs.by_label(context.state.choices) if context.flow else []),
            ]

        return await self.system(transport, platform_id, chat_id, remember)

    async def system(
        self,
        transport: str,
        platform_id: str,
        chat_id: str,
        work: Callable[[Context], Awaitable[None]],
    ) -> list[Reply]:
        """Run `work` on a person's state on the bot's own account (a delivery, a scheduled
        reminder): under the person's lock, in one transaction, like their own events."""
        event = Event(transport, chat_id, platform_id, EventKind.TEXT)
        async with self._lock((transport, platform_id)):
            replies = await self._stored(event, work)
        return replies or []

    def remember_language(self, key: tuple[str, str], language: str) -> None:
        self.flood.remember_language(key, language)

    # -- the transaction ------------------------------------------------------------------

    async def _stored(
        self, event: Event, work: Callable[[Context], Awaitable[None]]
    ) -> list[Reply] | None:
        """Run `work` on the event in one transaction; retry it whole while the database is
        busy. Replies come back only after their transaction committed: nothing is
        acknowledged that was not stored. None when the database stayed unavailable (or
        the work failed): nothing of the event is kept."""
        for attempt in range(self.attempts):
            try:
                # The transaction begins with the first statement; leaving the block without
                # a commit rolls it back.
                async with self.core.engine.connect() as connection:
                    if not await handled.begin(
                        connection, event.transport, event.user_id, event.platform_event_id
                    ):
                        log.info("%s event handled before: dropped", event.transport)
                        await connection.rollback()
                        return []
                    context = await self._context(connection, event)
                    try:
                        await work(context)
                        await self._write(context)
                    finally:
                        await context.close_session()
                self.flood.remember_language((event.transport, event.user_id), context.lang)
                return context.replies
            except Exception as exc:
                if not transient(exc):
                    log.exception("event %s from %s failed", event.kind, event.transport)
                    return None
                log.warning("database busy for event %s, attempt %d", event.kind, attempt + 1)
                if attempt + 1 < self.attempts:
                    await asyncio.sleep(self.retry_delay * 2**attempt)
        log.error("event %s from %s dropped after retries", event.kind, event.transport)
        return None

    async def _context(self, connection: AsyncConnection, event: Event) -> Context:
        settings = self.core.settings
        language = negotiate_language(event.language_hint, settings.bot.default_language)
        # A group, or another door (the web console), is never the person's private chat.
        private = not (event.is_group or event.door)
        person = await repos.load_person(
            connection,
            event.transport,
            event.user_id,
            event.chat_id,
            event.chat_id if private else "",
            language,
        )
        if private and person.user.chat_id != event.chat_id:
            person.user.chat_id = event.chat_id
        context = Context(core=self.core, connection=connection, event=event, person=person)
        context.event = inputs.resolve_choice(event, person.state.choices, person.state.data)
        return context

    async def _route(self, context: Context) -> None:
        """An event a person sent: logged, routed, answered (never with silence)."""
        self._log(context, "in")
        await self.core.route(context)
        if not context.replies and not context.erased:
            context.say(context.t("core.done"))
        context.replies = merged(context.replies)
        with_choices = [reply for reply in context.replies if reply.choices]
        shown = inputs.shown(with_choices[-1].choices) if with_choices else []
        # A delivered message's choices, answered by label during a dialogue, stay
        # answerable until the dialogue ends (an alert's "Understood" after an answer).
        kept = inputs.by_label(context.state.choices, context.event.choice) if context.flow else []
        context.state.choices = [*shown, *kept]
        ACTIVITY.event(str(context.event.kind))  # INFO sums these up once a minute
        log.debug(
            "handled %s from %s user %s -> %d replies",
            context.event.kind,
            context.event.transport,
            context.user.id,
            len(context.replies),
        )

    async def _write(self, context: Context) -> None:
        """Store what the session holds, the state and the log, and commit."""
        await context.flush_session()
        if context.erased:  # the person is gone: nothing more of them is stored
            await context.connection.commit()
            return
        self._log(context, "out")
        await context.connection.run_sync(
            repos.write_event, context.person, context.log, commit=True
        )

    def _log(self, context: Context, direction: str) -> None:
        if direction == "in":
            event = context.event
            text = event.text or event.choice or event.command
            if event.location is not None:
                text = f"{event.location.latitude},{event.location.longitude}"
            if event.attachment is not None:
                text = f"{event.attachment.kind}:{event.attachment.sha256}"
            elif event.file is not None:
                text = str(event.file.kind)  # not fetched (yet): a step may want it
            texts = [text]
        else:
            texts = [
                "\n".join(filter(None, (r.lead, r.title, "" if r.secret else r.text)))
                for r in context.replies
            ]
        for text in texts:
            context.log.append(
                repos.log_row(
                    transport=context.event.transport,
                    chat_id=context.event.chat_id,
                    user_id=context.user.id,
                    direction=direction,
                    kind=str(context.event.kind) if direction == "in" else "reply",
                    text=text if context.consented else None,
                )
            )

    # -- helpers --------------------------------------------------------------------------

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _text(self, event: Event, key: str, **values: object) -> str:
        """A text for someone whose profile is not at hand: the language last seen."""
        settings = self.core.settings
        language = self.flood.language((event.transport, event.user_id)) or negotiate_language(
            event.language_hint, settings.bot.default_language
        )
        emergency = settings.bot.emergency_number
        return self.core.content.text(language, key, emergency=emergency, **values)
