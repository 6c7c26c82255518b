"""Routing one event inside its transaction: command, pressed choice, open dialogue, free
text, or the menu — with the access table checked on the way, and the open question shown
again after anything that interrupted it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from bot.core import inputs
from bot.core.access import ADMIN, COORDINATOR, EVERYONE, Rule, check_complete, sub_action
from bot.core.context import Context
from bot.core.events import EventKind
from bot.core.forms import FORMS
from bot.core.intents import mentions, words
from bot.core.jobs import Job
from bot.core.router import CommandSpec, Handler, Router, TextMatcher

# Commands that steer an open form; outside one they have nothing to act on.
FORM_CONTROLS = {
    "back": "back",
    "skip": "skip",
    "done": "done",
    "unknown": "unknown",
    "summary": "review",
    "cancel": "cancel",
    "stop": "cancel",
}
# /cancel and /stop outside a form are commands of their own (leave whatever is open).
OWN_COMMANDS = {"cancel", "stop"}


class Dispatcher:
    """The composed routers: their commands, choices, dialogues and the access table."""

    def __init__(self, routers: Iterable[Router]) -> None:
        self.commands: dict[str, CommandSpec] = {}
        self.choices: dict[str, Handler] = {}
        self.flows: dict[str, Handler] = {}
        self.resumers: dict[str, Handler] = {}
        self.text_matchers: list[TextMatcher] = []
        self.gate: Handler | None = None
        self.fallback: Handler | None = None
        # The access table: who may use every command, choice namespace and dialogue.
        self.access: dict[str, Rule] = {}
        # Scheduled jobs by id (bot/core/jobs.py), run by bot/scheduler.py.
        self.jobs: dict[str, Job] = {}
        for router in routers:
            self._include(router)
        check_complete(self.access, self.commands, [*self.choices, *self.flows])
        for name, spec in self.commands.items():
            rule = self.access[f"/{name}"]
            self.commands[name] = dataclasses.replace(spec, public=rule.public, roles=rule.roles)

    def _include(self, router: Router) -> None:
        for name, spec in router.commands.items():
            if name in self.commands:
                raise ValueError(f"command /{name} registered twice ({router.name})")
            self.commands[name] = spec
        for key, rule in router.access.items():
            if key in self.access:
                raise ValueError(f"access rule for {key!r} given twice ({router.name})")
            self.access[key] = rule
        for job_id, job in router.jobs.items():
            if job_id in self.jobs:
                raise ValueError(f"job {job_id!r} registered twice ({router.name})")
            self.jobs[job_id] = job
        self.choices.update(router.choices)
        self.flows.update(router.flows)
        self.resumers.update(router.resumers)
        self.text_matchers.extend(router.text_matchers)
        self.gate = router.gate or self.gate
        self.fallback = router.fallback or self.fallback

    # -- access (the Core knows who is an admin) --------------------------------------------

    def is_admin(self, transport: str, platform_id: str) -> bool:
        raise NotImplementedError

    def roles_of(self, context: Context) -> frozenset[str]:
        """What the access table matches: the person's role, coordinator, admin."""
        found = {context.user.role} if context.user.role else set()
        if context.is_coordinator:
            found.add(COORDINATOR)
        if self.is_admin(context.event.transport, context.event.user_id):
            found.add(ADMIN)
        return frozenset(found)

    def allowed(self, spec: CommandSpec, context: Context) -> bool:
        """Whether the person may use a command (menus list only those)."""
        return Rule(roles=spec.roles, public=spec.public).admits(self.roles_of(context))

    async def _admit(self, context: Context, key: str, rule: Rule) -> bool:
        """True when the event may go on; otherwise it has been answered: onboarding
        first for someone who has not agreed yet, or a polite, audited refusal."""
        if rule.private and context.event.is_group:
            # Someone's own data never goes to a room others read: to the direct chat.
            if context.flow == key:
                context.end_flow()
            context.say(context.t("core.private_only"))
            return False
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
        if not context.consented and not context.is_coordinator and self.gate is not None:
            # Coordinators are staff: they triage without onboarding. Onboarding asks for
            # consent, role and region: never in a room others read.
            if context.event.is_group:
                context.say(context.t("core.private_only"))
            else:
                await self.gate(context)
            return False
        return True

    # -- routing ----------------------------------------------------------------------------

    async def route(self, context: Context) -> None:
        """Route the event; when it interrupted an open dialogue, ask its question again."""
        open_before = context.flow
        await self._dispatch(context)
        if context.flow and context.flow == open_before and not context.question_shown:
            await self.resume(context)

    async def resume(self, context: Context) -> None:
        """Show the open dialogue's question again (nothing when none is open)."""
        resumer = self.resumers.get(context.flow)
        if resumer is not None:
            context.question_shown = True
            await resumer(context)

    async def _dispatch(self, context: Context) -> None:
        event = context.event
        limit = context.settings.limits.max_text_length
        length = inputs.too_long(event, limit)
        if length:
            context.say(context.t("core.too_long", length=length, limit=limit))
            return
        if inputs.forged_choice(event):
            context.toast(context.t("core.stale_choice"))
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
        elif event.kind in (EventKind.UNSUPPORTED, EventKind.ATTACHMENT, EventKind.LOCATION):
            context.say(context.t("core.cannot_use_here"))
            await self._fall_back(context, quiet=True)
        else:
            await self._fall_back(context)

    async def _route_command(self, context: Context) -> None:
        name = context.event.command
        control = FORM_CONTROLS.get(name)
        if control is not None and context.flow in FORMS:
            context.event = dataclasses.replace(
                context.event, kind=EventKind.CHOICE, choice=f"{context.flow}:~{control}"
            )
            await self._run_flow(context)
            return
        if control is not None and name not in OWN_COMMANDS:
            context.say(context.t("core.nothing_open", command=name))
            return
        spec = self.commands.get(name)
        if spec is None:
            context.say(context.t("core.unknown_command", command=name[:32]))
            if not context.flow:
                await self._fall_back(context, quiet=True)
            return
        await self._run_spec(context, spec)

    async def run_command(self, context: Context, name: str, args: str = "") -> None:
        context.event = dataclasses.replace(
            context.event, kind=EventKind.COMMAND, command=name, args=args
        )
        await self._run_spec(context, self.commands[name])

    async def run_choice(self, context: Context, choice: str) -> None:
        """Handle `choice` as if it had been pressed (after e.g. switching the language)."""
        context.event = dataclasses.replace(context.event, kind=EventKind.CHOICE, choice=choice)
        await self._dispatch(context)

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
        context.question_shown = True
        if await self._admit(context, name, self.access.get(name, EVERYONE)):
            await self.flows[name](context)

    async def _route_choice(self, context: Context) -> None:
        namespace = context.event.choice.split(":", 1)[0]
        if namespace in self.flows:
            if context.flow == namespace:
                await self._run_flow(context)
            else:
                context.toast(context.t("core.stale_choice"))
            return
        handler = self.choices.get(namespace)
        if handler is None:
            context.toast(context.t("core.stale_choice"))
        elif await self._admit(context, namespace, self.access.get(namespace, EVERYONE)):
            await handler(context)

    async def _route_text(self, context: Context) -> None:
        text = context.event.text
        # The command whose keyword the text names: the higher rank, then the longer keyword
        # ("meine meldungen" before "meldung", asking for tips before an observation), then
        # a keyword of the person's own language ("alarm" is German, Polish, Czech, ...).
        best: tuple[int, int, bool, CommandSpec, str, str] | None = None
        length = words(text)
        for name, spec in self.commands.items():
            if spec.intent_words and length > spec.intent_words:
                continue
            for language, keyword in context.content.keywords(name):
                if mentions(text, keyword):
                    own = language == context.user.language
                    found = (spec.rank, len(keyword), own, spec, language, keyword)
                    if best is None or found[:3] > best[:3]:
                        best = found
        if best is not None:
            _, _, _, spec, language, keyword = best
            if not context.consented and language != context.user.language:
                # Someone who has not chosen a language yet is answered in the one they typed.
                context.user.language = language
            args = text if spec.takes_text and length > words(keyword) else ""
            context.event = dataclasses.replace(
                context.event, kind=EventKind.COMMAND, command=spec.name, args=args
            )
            await self._run_spec(context, spec)
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
