"""The dialogue core: one event in, stored state and replies out."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.core import inputs
from bot.core.context import Context, Destination
from bot.core.dispatch import Dispatcher
from bot.core.doors import Door
from bot.core.events import Choice, Event, EventKind, Reply, merged
from bot.core.faults import transient
from bot.core.i18n import Content, negotiate_language
from bot.core.limits import FloodGate, Verdict
from bot.core.media import MediaStore
from bot.core.router import Router
from bot.storage import repos

log = logging.getLogger(__name__)

DB_ATTEMPTS = 4
RETRY_DELAY = 0.2  # seconds before the second attempt; doubled for each further one


class Core(Dispatcher):
    """Routes neutral events to feature handlers; every step is stored before it is answered."""

    def __init__(
        self,
        settings: Settings,
        content: Content,
        sessions: async_sessionmaker[AsyncSession],
        routers: Iterable[Router],
        doors: Callable[[Settings], list[Door]],
    ) -> None:
        super().__init__(routers)
        self.settings = settings
        self.content = content
        self.sessions = sessions
        self.engine: AsyncEngine = sessions.kw["bind"]
        self.media = MediaStore(
            settings.media_dir, int(settings.limits.max_attachment_mb * 1024 * 1024)
        )
        self._doors = doors
        self.flood = FloodGate(lambda: self.settings.limits.messages_per_minute)
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # -- doors: who coordinates, who administers, where reports go ----------------------------

    def doors(self) -> list[Door]:
        """The transports of this deployment, read from the settings as they are now."""
        return self._doors(self.settings)

    def door(self, name: str) -> Door | None:
        return next((door for door in self.doors() if door.name == name), None)

    def is_configured_coordinator(self, transport: str, platform_id: str) -> bool:
        door = self.door(transport)
        return door is not None and platform_id in door.coordinators

    def is_admin(self, transport: str, platform_id: str) -> bool:
        door = self.door(transport)
        return door is not None and platform_id in door.admins

    async def coordinator_destinations(
        self, connection: AsyncConnection | AsyncSession
    ) -> list[Destination]:
        """Where reports go: on every transport of the deployment, the coordinators' group
        where one is set, otherwise each coordinator personally (named in the config or
        added by an admin)."""
        granted = await repos.granted_coordinators(connection)
        found: list[Destination] = []
        for door in self.doors():
            if not door.active:
                continue
            if door.group:
                found.append(Destination(door.name, door.group))
                continue
            people: dict[str, str] = dict.fromkeys(door.coordinators, "")
            people.update((pid, chat) for t, pid, chat in granted if t == door.name)
            found.extend(Destination(door.name, chat or pid) for pid, chat in people.items())
        return found

    def admin_destinations(self) -> list[Destination]:
        """The admins' own chats on every transport of the deployment."""
        return [
            Destination(door.name, admin)
            for door in self.doors()
            if door.active
            for admin in door.admins
        ]

    async def tell_admins(
        self, session: AsyncSession, key: str, dedupe: str | None = None, **values: str
    ) -> None:
        """Queue a notice for the admins in the deployment's language (something an
        operator must fix, e.g. a report that reached no coordinator). `dedupe` keeps the
        same notice from being queued twice."""
        lang = self.settings.bot.default_language
        notice = Reply(
            self.content.text(lang, f"admin.notice_{key}", **values),
            title=self.content.text(lang, "admin.notice_title"),
        )
        for destination in self.admin_destinations():
            where = f"{destination.transport}:{destination.chat_id}"
            once = None if dedupe is None else f"{dedupe}:{where}"[:128]
            if once is not None and await repos.outbox_key_taken(session, once):
                continue
            await repos.queue_outbox(
                session,
                transport=destination.transport,
                chat_id=destination.chat_id,
                user_id=None,
                kind="notice",
                replies=[notice],
                dedupe_key=once,
            )

    # -- public entry points ----------------------------------------------------------------

    async def handle(self, event: Event) -> list[Reply]:
        """Handle one event; events of one person run one at a time, in order.

        Returns the replies to show. A person over the flood limit is told once what is not
        read and for how long; until then their events are not processed."""
        if not inputs.valid_sender(event):
            log.warning("event from %s with an unusable sender or chat id dropped", event.kind)
            return []
        key = (event.transport, event.user_id)
        verdict = self.flood.admit(key)
        if verdict is not Verdict.ADMIT:
            log.info("%s user throttled on %s (%s)", event.transport, event.kind, verdict.value)
            if verdict is Verdict.DROP:
                return []
            seconds = max(1, round(self.flood.seconds_left(key)))
            return [Reply(self._text(event, "core.throttled", seconds=seconds))]
        async with self._lock(key):
            return await self._handle_stored(event)

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _text(self, event: Event, key: str, **values: object) -> str:
        """A text for someone whose profile is not at hand: the language last seen."""
        language = self.flood.language((event.transport, event.user_id)) or negotiate_language(
            event.language_hint, self.settings.bot.default_language
        )
        emergency = self.settings.bot.emergency_number
        return self.content.text(language, key, emergency=emergency, **values)

    async def delivered(
        self, transport: str, platform_id: str, chat_id: str, choices: list[Choice]
    ) -> list[Reply]:
        """A queued message (an alert, a notice) reached a person's chat. Remember its
        choices, so that a number or label typed back picks them; when the person is in a
        dialogue, return its open question to send again under the message — the
        dialogue's answers keep the numbers, the message's choices answer to their labels."""
        event = Event(transport, chat_id, platform_id, EventKind.TEXT)
        async with self._lock((transport, platform_id)), self.engine.connect() as connection:
            context = await self._context(connection, event)
            try:
                if context.flow in self.resumers:
                    await self.resume(context)
                questions = [r for r in context.replies if r.choices]
                context.state.choices = [
                    *(inputs.shown(questions[-1].choices) if questions else []),
                    *inputs.shown(choices, numbered=not context.flow),
                    *(inputs.by_label(context.state.choices) if context.flow else []),
                ]
                context.replies = merged(context.replies)
                self._log_replies(context)
                await context.flush_session()
                await connection.run_sync(repos.write_event, context.person, context.log)
                await connection.commit()
            finally:
                await context.close_session()
        return context.replies

    # -- one event, one transaction ---------------------------------------------------------

    async def _handle_stored(self, event: Event) -> list[Reply]:
        """Route the event in one transaction; retry it whole while the database is busy.

        Replies are returned only after their transaction committed: nothing is
        acknowledged that was not stored. When the database stays unavailable (or a
        handler fails), the person gets an apology and nothing of the event is kept."""
        event = inputs.normalise(event)
        for attempt in range(DB_ATTEMPTS):
            try:
                # The transaction begins with the first statement; `_finish` commits it,
                # and leaving the block without that rolls it back.
                async with self.engine.connect() as connection:
                    context = await self._context(connection, event)
                    try:
                        self._log_inbound(context)
                        await self.route(context)
                        await self._finish(context)
                    finally:
                        await context.close_session()
                    language = context.user.language
                self.flood.remember_language((event.transport, event.user_id), language)
                return context.replies
            except Exception as exc:
                if not transient(exc):
                    log.exception("event %s from %s failed", event.kind, event.transport)
                    break
                log.warning("database busy for event %s, attempt %d", event.kind, attempt + 1)
                if attempt + 1 < DB_ATTEMPTS:
                    await asyncio.sleep(RETRY_DELAY * 2**attempt)
        else:
            log.error("event %s from %s dropped after retries", event.kind, event.transport)
        return [Reply(self._text(event, "core.storage_failed"))]

    async def _context(self, connection: AsyncConnection, event: Event) -> Context:
        language = negotiate_language(event.language_hint, self.settings.bot.default_language)
        person = await repos.load_person(
            connection,
            event.transport,
            event.user_id,
            event.chat_id,
            "" if event.is_group else event.chat_id,
            language,
        )
        if not event.is_group and person.user.chat_id != event.chat_id:
            person.user.chat_id = event.chat_id
        context = Context(core=self, connection=connection, event=event, person=person)
        context.event = inputs.resolve_choice(event, person.state.choices, person.state.data)
        return context

    def _log_inbound(self, context: Context) -> None:
        event = context.event
        text = event.text or event.choice or event.command
        if event.location is not None:
            text = f"{event.location.latitude},{event.location.longitude}"
        if event.attachment is not None:
            text = f"{event.attachment.kind}:{event.attachment.sha256}"
        context.log.append(
            repos.log_row(
                transport=event.transport,
                chat_id=event.chat_id,
                user_id=context.user.id,
                direction="in",
                kind=str(event.kind),
                text=text if context.consented else None,
            )
        )

    def _log_replies(self, context: Context) -> None:
        for reply in context.replies:
            context.log.append(
                repos.log_row(
                    transport=context.event.transport,
                    chat_id=context.event.chat_id,
                    user_id=context.user.id,
                    direction="out",
                    kind="reply",
                    text="\n".join(filter(None, (reply.lead, reply.title, reply.text)))
                    if context.consented
                    else None,
                )
            )

    async def _finish(self, context: Context) -> None:
        """Store the state, the log and what the session holds, and commit."""
        await context.flush_session()
        if context.erased:
            await context.connection.commit()
            return
        if not context.replies:
            context.say(context.t("core.done"))
        context.replies = merged(context.replies)
        with_choices = [reply for reply in context.replies if reply.choices]
        shown = inputs.shown(with_choices[-1].choices) if with_choices else []
        # A delivered message's choices, answered by label during a dialogue, stay
        # answerable until the dialogue ends (an alert's "Understood" after an answer).
        kept = inputs.by_label(context.state.choices, context.event.choice) if context.flow else []
        context.state.choices = [*shown, *kept]
        self._log_replies(context)
        await context.connection.run_sync(
            repos.write_event, context.person, context.log, commit=True
        )
        log.info(
            "handled %s from %s user %s -> %d replies",
            context.event.kind,
            context.event.transport,
            context.user.id,
            len(context.replies),
        )
