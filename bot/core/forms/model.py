"""What a form is: steps, the form itself, and the typed state of one person's draft."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bot.core.context import Context
    from bot.core.events import Choice

Answers = dict[str, Any]
UNKNOWN = "?"


class Input(StrEnum):
    CHOICE = "choice"
    MULTI = "multi"
    TEXT = "text"
    NUMBER = "number"
    LOCATION = "location"
    MEDIA = "media"
    TIME = "time"
    DATETIME = "datetime"


# Steps where what a person types is the answer: a typed number never picks an option.
TYPED = frozenset({Input.TEXT, Input.NUMBER, Input.TIME, Input.DATETIME, Input.LOCATION})


@dataclass(frozen=True)
class Step:
    """One question of a form."""

    key: str
    kind: Input
    question: str
    # Content key of the option list (choice and multi steps).
    options: str | None = None
    # Content key of a heading shown above the question in large type.
    title: str = ""
    optional: bool = False
    unknown: bool = False
    when: Callable[[Answers], bool] | None = None
    # "That's all" skips the remaining steps of the same group.
    group: str = ""
    # Text steps: a voice note is accepted instead of typing.
    accept_voice: bool = False
    # Location steps: a typed place is accepted too.
    allow_text: bool = False
    minimum: int = 0
    maximum: int = 9999
    # Extra check of a parsed answer; returns a content key describing the problem.
    check: Callable[[Context, Any], str | None] | None = None
    summary: bool = True
    # Choice steps: a typed text (or voice note) is an answer too. It is stored as the
    # answer of step `text_to`, and this step's option is inferred from it by `infer`.
    text_to: str = ""
    infer: Callable[[Context, str], str] | None = None
    # Time steps: observations lie in the past, schedules in the future.
    direction: Literal["past", "future"] = "past"
    # A named section (e.g. "details") is asked only once the person opens it.
    section: str = ""
    # More choices shown with the question (e.g. switching the language).
    extra: Callable[[Context], list[Choice]] | None = None
    # The question stays in the chat once answered by a press, because what it says
    # matters afterwards (110, the consent); the next question of a step without it takes
    # its place where the platform can (Telegram edits the pressed message).
    stays: bool = False

    def applies(self, answers: Answers) -> bool:
        return self.when is None or self.when(answers)


@dataclass(frozen=True)
class Form:
    """A dialogue declared as steps."""

    name: str
    steps: tuple[Step, ...]
    on_submit: Callable[[Context, Answers], Awaitable[None]]
    # Content key prefix: "<prefix>.labels.<step>" names fields in the summary.
    texts: str
    review: bool = True
    on_answer: Callable[[Context, str, Any], None] | None = None
    question_values: Callable[[Context], Mapping[str, Any]] = field(default=lambda _ctx: {})
    # The summary's send buttons: one per option of this content list (e.g. "with contact",
    # "anonymously"); the chosen option is handed to `on_submit` as answers["_submit"].
    # None: one button, "<texts>.confirm".
    submit_options: str | None = None
    # The section the summary offers to open ("Add details"); its button is
    # "<texts>.add_<section>".
    section: str = ""
    # A section open from the start (a form that is all details).
    opened: str = ""
    # Content key of a heading over every question that has no title of its own.
    heading: str = ""
    # Ask once before a draft with answers is thrown away.
    confirm_cancel: bool = False
    # Coordinators need not finish it (onboarding): after their other commands it is not
    # asked again; they carry on with its buttons or start it anew.
    optional_for_staff: bool = False
    # Content keys of the summary's title and single send button (default
    # "<texts>.review" and "<texts>.confirm").
    review_title: str = ""
    confirm: str = ""

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def has(self, key: str) -> bool:
        return any(step.key == key for step in self.steps)


class Invalid(Exception):
    """An answer that does not fit; `key` names the hint in content."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


Mode = Literal["ask", "review", "pick", "cancel"]


@dataclass
class FormState:
    """One person's draft of a form: stored as the dialogue state's `data`."""

    step: str = ""
    mode: Mode = "ask"
    answers: Answers = field(default_factory=dict)
    # The steps answered, in order: what "back" walks.
    trail: list[str] = field(default_factory=list)
    # A multi step's ticks and a media step's files, gathered before they are stored.
    multi: list[str] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)
    editing: bool = False
    # The section opened from the summary ("details").
    opened: str = ""
    # The kind of the open step, read before routing (a typed number is an answer there).
    input: str = ""
    # Where a cancel confirmation returns to.
    before_cancel: Mode = "ask"
    # Set by the draft reminder, so that a draft is reminded of once.
    reminded: bool = False

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> FormState:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def dump(self) -> dict[str, Any]:
        return asdict(self)

    def has_content(self) -> bool:
        """Whether anything the person gave would be lost by cancelling."""
        given = [v for k, v in self.answers.items() if not k.startswith("_") and v is not None]
        return bool(given or self.media)
