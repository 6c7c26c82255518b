"""Routers: what each feature module handles, declared with small decorators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.core.access import COORDINATOR, Rule
from bot.core.jobs import Daily, Every, Job

if TYPE_CHECKING:
    from bot.core.context import Context

Handler = Callable[["Context"], Awaitable[None]]
TextMatcher = Callable[["Context"], Awaitable[bool]]
JobRun = Callable[..., Awaitable[Any]]

__all__ = ["COORDINATOR", "CommandSpec", "Handler", "Router", "TextMatcher"]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command and who may use it (`public` and `roles` are filled in by the Core from
    the access table; see bot/core/access.py)."""

    name: str
    handler: Handler
    # Usable before onboarding and consent (tips, the silent-alarm guide, help).
    public: bool = False
    # None: everyone; else the roles (or COORDINATOR, ADMIN) allowed.
    roles: frozenset[str] | None = None
    # Shown in command menus (Telegram set_my_commands); coordinator ones only to coordinators.
    listed: bool = True
    # Free text that names this command by one of its keywords ("intents" in content) is
    # handed over whole as the arguments when it says more than the keyword ("Zwei Männer
    # schneiden die Plane auf" starts a report with that description).
    takes_text: bool = False
    # Between commands whose keywords a text contains, the higher rank wins (asking for
    # tips beats describing an observation); then the longer keyword.
    rank: int = 1
    # Keywords count only in texts of at most this many words (0: any): "Hilfe!" opens the
    # help, "Hilfe, jemand bricht in meinen Lkw ein" is an observation.
    intent_words: int = 0


@dataclass
class Router:
    """One feature's entry points."""

    name: str
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    choices: dict[str, Handler] = field(default_factory=dict)
    flows: dict[str, Handler] = field(default_factory=dict)
    # How a flow shows its open question again after something else was answered.
    resumers: dict[str, Handler] = field(default_factory=dict)
    text_matchers: list[TextMatcher] = field(default_factory=list)
    gate: Handler | None = None
    fallback: Handler | None = None
    # The access table (see bot/core/access.py); one router of the composition carries it.
    access: Mapping[str, Rule] = field(default_factory=dict)
    # Scheduled jobs by id (see bot/core/jobs.py).
    jobs: dict[str, Job] = field(default_factory=dict)

    def command(
        self,
        *names: str,
        listed: bool = True,
        takes_text: bool = False,
        rank: int = 1,
        intent_words: int = 0,
    ) -> Callable[[Handler], Handler]:
        """Handle `/name` (and aliases); who may use it is said in the access table."""

        def register(handler: Handler) -> Handler:
            for index, name in enumerate(names):
                self.commands[name] = CommandSpec(
                    name,
                    handler,
                    listed=listed and index == 0,
                    takes_text=takes_text,
                    rank=rank,
                    intent_words=intent_words,
                )
            return handler

        return register

    def choice(self, namespace: str) -> Callable[[Handler], Handler]:
        """Handle pressed choices whose id starts with `namespace:`."""

        def register(handler: Handler) -> Handler:
            self.choices[namespace] = handler
            return handler

        return register

    def flow(self, name: str, resume: Handler | None = None) -> Callable[[Handler], Handler]:
        """Handle every event while the dialogue `name` is active; `resume` shows its open
        question again after an interruption (an alert, /tips, a notice)."""

        def register(handler: Handler) -> Handler:
            self.flows[name] = handler
            if resume is not None:
                self.resumers[name] = resume
            return handler

        return register

    def text(self, matcher: TextMatcher) -> TextMatcher:
        """Try free text that no command intent matched; return True when handled.

        Matchers run for anyone, outside the access table: keep them to showing public
        content, and start anything else through a command (`context.run_command`)."""
        self.text_matchers.append(matcher)
        return matcher

    def job(self, job_id: str, when: Every | Daily | None = None) -> Callable[[JobRun], JobRun]:
        """Run the decorated `async def job(runtime, ...)` on the scheduler: at `when`, or
        (None) when scheduled by id."""

        def register(run: JobRun) -> JobRun:
            if job_id in self.jobs:
                raise ValueError(f"job {job_id!r} registered twice ({self.name})")
            self.jobs[job_id] = Job(job_id, run, when)
            return run

        return register

    def on_gate(self, handler: Handler) -> Handler:
        """Called when someone who has not onboarded asks for something that needs it."""
        self.gate = handler
        return handler

    def on_fallback(self, handler: Handler) -> Handler:
        """Called when nothing else matched: never leave a message unanswered."""
        self.fallback = handler
        return handler
