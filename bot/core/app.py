"""The dialogue core: one event in, stored state and replies out."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.core import inputs
from bot.core.access import ADMIN, COORDINATOR, EVERYONE, Rule, check_complete, sub_action
from bot.core.context import Context, Destination
from bot.core.events import Choice, Event, EventKind, Reply
from bot.core.faults import transient
from bot.core.i18n import Content, negotiate_language
from bot.core.limits import FloodGate, Verdict
from bot.core.media import MediaStore
from bot.core.router import CommandSpec, Handler, Router, TextMatcher
from bot.logs import ACTIVITY
from bot.storage import repos

log = logging.getLogger(__name__)

# Commands that steer an active form rather than start something new.
FORM_CONTROLS = {"back": "~back", "skip": "~skip", "done": "~done"}
DB_ATTEMPTS = 4
RETRY_DELAY = 0.2  # seconds before the second attempt; doubled for each further one


class Core:
    """Routes neutral events to feature handlers; every step is stored before it is answered."""

    def __init__(
        self,
        settings: Settings,
        content: Content,
        sessions: async_sessionmaker[AsyncSession],
        routers: Iterable[Router],
    ) -> None:
        self.settings = settings
        self.content = content
        self.sessions = sessions
        self.engine: AsyncEngine = sessions.kw["bind"]
        self.media = MediaStore(
            settings.media_dir, int(settings.limits.max_attachment_mb * 1024 * 1024)
        )
        self.commands: dict[str, CommandSpec] = {}
        self.choices: dict[str, Handler] = {}
        self.flows: dict[str, Handler] = {}
        self.text_matchers: list[TextMatcher] = []
        self.gate: Handler | None = None
        self.fallback: Handler | None = None
        # The access table: who may use every command, choice namespace and dialogue.
        self.access: dict[str, Rule] = {}
        for router in routers:
            self._include(router)
        check_complete(self.access, self.commands, [*self.choices, *self.flows])
        for name, spec in self.commands.items():
            rule = self.access[f"/{name}"]
            self.commands[name] = dataclasses.replace(spec, public=rule.public, roles=rule.roles)
        self.flood = FloodGate(lambda: self.settings.limits.messages_per_minute)
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _include(self, router: Router) -> None:
        for name, spec in router.commands.items():
            if name in self.commands:
                raise ValueError(f"command /{name} registered twice ({router.name})")
            self.commands[name] = spec
        for key, rule in router.access.items():
            if key in self.access:
                raise ValueError(f"access rule for {key!r} given twice ({router.name})")
            self.access[key] = rule
        self.choices.update(router.choices)
        self.flows.update(router.flows)
        self.text_matchers.extend(router.text_matchers)
        self.gate = router.gate or self.gate
        self.fallback = router.fallback or self.fallback

    # -- public entry points ----------------------------------------------------------------

    async def handle(self, event: Event) -> list[Reply]:
        """Handle one event; events of one person run one at a time, in order.

        Returns the replies to show, possibly none: a person over the flood limit is told
        once, then gets silence (an empty list) until the window has passed."""
        if not inputs.valid_sender(event):
            log.warning("event from %s with an unusable sender or chat id dropped", event.kind)
            return []
        key = (event.transport, event.user_id)
        verdict = self.flood.admit(key)
        if verdict is not Verdict.ADMIT:
            log.info("%s user throttled on %s (%s)", event.transport, event.kind, verdict.value)
            if verdict is Verdict.DROP:
                return []
            return [Reply(self._text(event, "core.throttled"))]
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            return await self._handle_stored(event)

    def _text(self, event: Event, key: str) -> str:
        """A text for someone whose profile is not at hand: the language last seen."""
        language = self.flood.language((event.transport, event.user_id)) or negotiate_language(
            event.language_hint, self.settings.bot.default_language
        )
        return self.content.text(language, key, emergency=self.settings.bot.emergency_number)

    async def remember_choices(
        self, transport: str, platform_id: str, chat_id: str, choices: list[Choice]
    ) -> None:
        """Record options a transport showed outside a reply (a delivered report, an alert),
        so that a number or label typed back picks them."""
        async with self.engine.begin() as connection:
            person = await repos.load_person(
                connection,
                transport,
                platform_id,
                chat_id,
                chat_id,
                self.settings.bot.default_language,
            )
            person.state.choices = [[choice.id, choice.label] for choice in choices]
            await connection.run_sync(repos.write_event, person, [])

    def coordinator_destinations(self) -> list[Destination]:
        """Where reports go: each configured coordinator chat, per transport."""
        found = [Destination("console", name) for name in self.settings.console.coordinators]
        telegram = self.settings.telegram
        if telegram.enabled and telegram.coordinator_chat_id is not None:
            found.append(Destination("telegram", str(telegram.coordinator_chat_id)))
        matrix = self.settings.matrix
        if matrix.enabled and matrix.coordinator_room:
            found.append(Destination("matrix", matrix.coordinator_room))
        return found

    def is_configured_coordinator(self, transport: str, platform_id: str) -> bool:
        match transport:
            case "console":
                return platform_id in self.settings.console.coordinators
            case "telegram":
                return platform_id in {str(i) for i in self.settings.telegram.coordinators}
            case "matrix":
                return platform_id in self.settings.matrix.coordinators
        return False

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
                        await self._route(context)
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

    async def _finish(self, context: Context) -> None:
        """Store the state, the log and what the session holds, and commit."""
        await context.flush_session()
        if context.erased:
            await context.connection.commit()
            return
        if not context.replies:
            context.say(context.t("core.done"))
        last = context.replies[-1]
        context.state.choices = [[c.id, c.label] for c in last.choices]
        for reply in context.replies:
            context.log.append(
                repos.log_row(
                    transport=context.event.transport,
                    chat_id=context.event.chat_id,
                    user_id=context.user.id,
                    direction="out",
                    kind="reply",
                    text="\n".join(filter(None, (reply.title, reply.text)))
                    if context.consented
                    else None,
                )
            )
        await context.connection.run_sync(
            repos.write_event, context.person, context.log, commit=True
        )
        ACTIVITY.event(str(context.event.kind))  # INFO sums these up once a minute
        log.debug(
            "handled %s from %s user %s -> %d replies",
            context.event.kind,
            context.event.transport,
            context.user.id,
            len(context.replies),
        )

    # -- routing ----------------------------------------------------------------------------

    async def _route(self, context: Context) -> None:
        event = context.event
        limit = self.settings.limits.max_text_length
        length = inputs.too_long(event, limit)
        if length:
            context.say(context.t("core.too_long", length=length, limit=limit))
            await self._resume(context)
            return
        if inputs.forged_choice(event):
            context.say(context.t("core.stale_choice"))
            await self._resume(context)
            return
        if event.kind is EventKind.CHOICE and event.choice.startswith("/"):
            name, _, args = event.choice[1:].partition(" ")
            event = context.event = dataclasses.replace(
                event, kind=EventKind.COMMAND, command=name, args=args
            )
        if event.kind is EventKind.COMMAND:
            await self._route_command(context)
        elif event.kind is EventKind.CHOICE:
            await self._route_choice(context)
        elif context.flow in self.flows:
            await self._run_flow(context)
        elif event.kind is EventKind.TEXT and event.text:
            await self._route_text(context)
        elif event.kind is EventKind.UNSUPPORTED:
            context.say(context.t("core.unsupported"))
        else:
            await self._fall_back(context)

    async def _route_command(self, context: Context) -> None:
        name = context.event.command
        if name in FORM_CONTROLS and context.flow in self.flows:
            context.event = dataclasses.replace(
                context.event,
                kind=EventKind.CHOICE,
                choice=f"{context.flow}:{FORM_CONTROLS[name]}",
            )
            await self._run_flow(context)
            return
        spec = self.commands.get(name)
        if spec is None:
            context.say(context.t("core.unknown_command", command=name[:32]))
            await self._resume(context)
            return
        await self._run_spec(context, spec)

    async def run_command(self, context: Context, name: str, args: str = "") -> None:
        context.event = dataclasses.replace(
            context.event, kind=EventKind.COMMAND, command=name, args=args
        )
        await self._run_spec(context, self.commands[name])

    async def _run_spec(self, context: Context, spec: CommandSpec) -> None:
        key = f"/{spec.name}"
        rule = self.access.get(key) or Rule(roles=spec.roles, public=spec.public)
        if not await self._admit(context, key, rule):
            return
        sub = sub_action(spec.name, context.event.args)
        if sub in self.access and not await self._admit(context, sub, self.access[sub]):
            return
        await spec.handler(context)

    async def _run_flow(self, context: Context) -> None:
        name = context.flow
        if await self._admit(context, name, self.access.get(name, EVERYONE)):
            await self.flows[name](context)

    # -- access -------------------------------------------------------------------------------

    def roles_of(self, context: Context) -> frozenset[str]:
        """What the access table matches: the person's role, coordinator, admin."""
        found = {context.user.role} if context.user.role else set()
        if context.is_coordinator:
            found.add(COORDINATOR)
        if context.event.user_id in self.settings.admin_ids(context.event.transport):
            found.add(ADMIN)
        return frozenset(found)

    def allowed(self, spec: CommandSpec, context: Context) -> bool:
        """Whether the person may use a command (menus list only those)."""
        return Rule(roles=spec.roles, public=spec.public).admits(self.roles_of(context))

    async def _admit(self, context: Context, key: str, rule: Rule) -> bool:
        """True when the event may go on; otherwise it has been answered: onboarding
        first for someone who has not agreed yet, or a polite, audited refusal."""
        if rule.public:
            return True
        if not rule.admits(self.roles_of(context)):
            await context.audit(
                "refused", key, role=context.user.role or "", coordinator=context.is_coordinator
            )
            if context.flow == key:
                context.end_flow()  # a right lost mid-dialogue: the dialogue ends here
            context.say(context.t(rule.refusal))
            return False
        if self._needs_onboarding(context):
            assert self.gate is not None
            await self.gate(context)
            return False
        return True

    def _needs_onboarding(self, context: Context) -> bool:
        # Coordinators are staff: they triage without onboarding.
        return not context.consented and not context.is_coordinator and self.gate is not None

    async def _route_choice(self, context: Context) -> None:
        namespace = context.event.choice.split(":", 1)[0]
        if namespace in self.flows:
            if context.flow == namespace:
                await self._run_flow(context)
            else:
                context.say(context.t("core.stale_choice"))
                await self._resume(context)
            return
        handler = self.choices.get(namespace)
        if handler is None:
            context.say(context.t("core.stale_choice"))
            await self._resume(context)
        elif await self._admit(context, namespace, self.access.get(namespace, EVERYONE)):
            await handler(context)

    async def _resume(self, context: Context) -> None:
        """After a stale button: show the active dialogue's question again, or the menu."""
        if context.flow in self.flows:
            context.event = dataclasses.replace(context.event, kind=EventKind.TEXT, text="")
            await self._run_flow(context)
        else:
            await self._fall_back(context, quiet=True)

    async def _route_text(self, context: Context) -> None:
        text = context.event.text.casefold()
        # The longest keyword found wins: "meine meldungen" before "meldung".
        best: tuple[int, CommandSpec, str] | None = None
        for name, spec in self.commands.items():
            for language, keyword in self.content.keywords(name):
                if keyword and keyword in text and (best is None or len(keyword) > best[0]):
                    best = (len(keyword), spec, language)
        if best is not None:
            if not context.consented and best[2] != context.user.language:
                # Someone who has not chosen a language yet is answered in the one they typed.
                context.user.language = best[2]
            await self._run_spec(context, best[1])
            return
        for matcher in self.text_matchers:
            if await matcher(context):
                return
        await self._fall_back(context)

    async def _fall_back(self, context: Context, quiet: bool = False) -> None:
        if not context.consented and self.gate is not None and not quiet:
            await self.gate(context)
        elif self.fallback is not None:
            if not quiet:
                context.say(context.t("core.not_understood"))
            await self.fallback(context)
