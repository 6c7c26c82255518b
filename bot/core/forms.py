"""The declarative form engine used by onboarding, settings, reports and broadcasts.

A form is a tuple of steps. Each step names its question (a content key), its input
kind, whether it may be skipped or answered "unknown", and when it applies. The
engine asks, validates and re-asks with a hint, goes back, skips, cancels, shows a
summary in which every answer can be edited, and calls `on_submit` on confirm.

State lives in the dialogue state's `data`: {"step", "answers", "trail", "mode", ...}.
Choice ids are `<form>:<step>:<value>` for answers and `<form>:~<control>` for controls,
so a button from an old question is recognised as stale.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.context import Context
from bot.core.events import AttachmentKind, Choice, EventKind
from bot.core.i18n import Content
from bot.core.router import Router

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

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)


class Invalid(Exception):
    """An answer that does not fit; `key` names the hint in content."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


# Every registered form by name: what a valid dialogue state of each looks like.
FORMS: dict[str, Form] = {}
MODES = ("ask", "review", "pick")


def register(router: Router, form: Form) -> None:
    """Make `form` a flow of `router`."""

    async def run(context: Context) -> None:
        await handle(context, form)

    router.flow(form.name)(run)
    FORMS[form.name] = form


async def start(context: Context, form: Form, answers: Answers | None = None) -> None:
    """Begin `form`; pre-filled answers are not asked again."""
    context.start_flow(
        form.name, {"answers": dict(answers or {}), "trail": [], "mode": "ask", "step": ""}
    )
    await _advance(context, form)


# -- the engine ---------------------------------------------------------------------------


def _answers(context: Context) -> Answers:
    return dict(context.state.data.get("answers", {}))


def _set(context: Context, **values: Any) -> None:
    context.update_data(**values)


async def handle(context: Context, form: Form) -> None:
    event = context.event
    data = context.state.data
    if event.kind is EventKind.CHOICE:
        value = event.choice.removeprefix(f"{form.name}:")
        if value.startswith("~"):
            await _control(context, form, value[1:])
            return
        step_key, _, picked = value.partition(":")
        if data.get("mode") != "ask" or step_key != data.get("step"):
            context.say(context.t("core.stale_choice"))
            await _reask(context, form)
            return
        await _answer(context, form, form.step(step_key), picked)
        return
    if data.get("mode") != "ask":
        await _reask(context, form)
        return
    await _answer(context, form, form.step(data["step"]), None)


async def _control(context: Context, form: Form, control: str) -> None:
    data = context.state.data
    answers = _answers(context)
    step = form.step(data["step"]) if data.get("step") else None
    match control.partition(":"):
        case ("cancel", _, _):
            context.end_flow()
            context.say(
                context.t("form.cancelled"), choices=[Choice("/menu", context.t("menu.open"))]
            )
        case ("back", _, _):
            trail = list(data.get("trail", []))
            if data.get("mode") == "review" and trail:
                _set(context, mode="ask", step=trail.pop(), trail=trail)
            elif trail:
                previous = trail.pop()
                answers.pop(previous, None)
                _set(context, step=previous, trail=trail, answers=answers, mode="ask", multi=[])
            else:
                context.say(context.t("form.at_start"))
            await _reask(context, form)
        case ("skip", _, _) if step is not None and data.get("mode") == "ask":
            if step.optional or step.unknown:
                await _store(context, form, step, None)
            else:
                context.say(context.t("form.required"))
                await _reask(context, form)
        case ("unknown", _, _) if step is not None and step.unknown:
            await _store(context, form, step, UNKNOWN)
        case ("done", _, _) if step is not None and data.get("mode") == "ask":
            await _finish_step(context, form, step)
        case ("ok", _, _) if data.get("mode") == "review":
            context.end_flow()
            await form.on_submit(context, applicable(form, answers))
        case ("edit", _, "") if data.get("mode") == "review":
            _set(context, mode="pick")
            _show_edit_menu(context, form, answers)
        case ("edit", _, key) if data.get("mode") in ("review", "pick") and key in answers:
            previous = answers.get(key)
            _set(
                context,
                mode="ask",
                step=key,
                editing=True,
                multi=previous if isinstance(previous, list) else [],
            )
            await _reask(context, form)
        case _:
            context.say(context.t("core.stale_choice"))
            await _reask(context, form)


async def _finish_step(context: Context, form: Form, step: Step) -> None:
    """'Done' on a multi or media step stores what was gathered; elsewhere it ends the group."""
    data = context.state.data
    if step.kind is Input.MULTI:
        await _store(context, form, step, list(data.get("multi", [])))
    elif step.kind is Input.MEDIA:
        await _store(context, form, step, list(data.get("media", [])) or None)
    elif step.group:
        answers = _answers(context)
        for other in form.steps:
            if other.group == step.group and other.key not in answers:
                answers[other.key] = None
        _set(context, answers=answers)
        await _advance(context, form)
    else:
        await _reask(context, form)


async def _answer(context: Context, form: Form, step: Step, picked: str | None) -> None:
    try:
        value = await _parse(context, form, step, picked)
    except Invalid as problem:
        context.say(context.t(problem.key, **problem.values))
        await _reask(context, form, hint_only=True)
        return
    if value is _PENDING:
        return
    await _store(context, form, step, value)


_PENDING = object()


async def _store(context: Context, form: Form, step: Step, value: Any) -> None:
    answers = _answers(context)
    answers[step.key] = value
    trail = list(context.state.data.get("trail", []))
    if not context.state.data.get("editing"):
        trail.append(step.key)
    _set(context, answers=answers, trail=trail, multi=[], media=[], input="")
    if form.on_answer is not None:
        form.on_answer(context, step.key, value)
    await _advance(context, form)


async def _advance(context: Context, form: Form) -> None:
    answers = _answers(context)
    for step in form.steps:
        if step.applies(answers) and step.key not in answers:
            _set(context, step=step.key, mode="ask")
            _ask(context, form, step)
            return
    if form.review:
        _set(context, mode="review", step="", editing=False)
        _show_review(context, form, answers)
    else:
        context.end_flow()
        await form.on_submit(context, applicable(form, answers))


def applicable(form: Form, answers: Answers) -> Answers:
    """The answers that count: those of steps that apply (after edits), and `_` extras."""
    keys = {step.key for step in form.steps if step.applies(answers)}
    return {k: v for k, v in answers.items() if k in keys or k.startswith("_")}


async def resume(context: Context, form: Form) -> None:
    """Show the open question (or the summary) of `form` again."""
    await _reask(context, form)


async def _reask(context: Context, form: Form, hint_only: bool = False) -> None:
    data = context.state.data
    if data.get("mode") == "review":
        _show_review(context, form, _answers(context))
    elif data.get("mode") == "pick":
        _show_edit_menu(context, form, _answers(context))
    elif data.get("step"):
        _ask(context, form, form.step(data["step"]))
    else:
        await _advance(context, form)


# -- asking -------------------------------------------------------------------------------


def _options(context: Context, step: Step, answers: Answers) -> list[tuple[str, str]]:
    return [] if step.options is None else context.content.options(context.lang, step.options)


def _ask(context: Context, form: Form, step: Step) -> None:
    answers = _answers(context)
    data = context.state.data
    choices: list[Choice] = []
    prefix = f"{form.name}:{step.key}:"
    if step.kind is Input.CHOICE:
        choices = [Choice(prefix + oid, label) for oid, label in _options(context, step, answers)]
    elif step.kind is Input.MULTI:
        picked = set(data.get("multi", []))
        choices = [
            Choice(prefix + oid, ("☑ " if oid in picked else "☐ ") + label)
            for oid, label in _options(context, step, answers)
        ]
        choices.append(Choice(f"{form.name}:~done", context.t("form.done")))
    elif step.kind is Input.MEDIA:
        choices.append(Choice(f"{form.name}:~done", context.t("form.done")))
    _set(context, input=str(step.kind))
    if step.unknown:
        choices.append(Choice(f"{form.name}:~unknown", context.t("form.unknown")))
    if step.optional:
        choices.append(Choice(f"{form.name}:~skip", context.t("form.skip")))
    if step.group:
        choices.append(Choice(f"{form.name}:~done", context.t("form.thats_all")))
    if data.get("trail") or data.get("editing"):
        choices.append(Choice(f"{form.name}:~back", context.t("form.back")))
    choices.append(Choice(f"{form.name}:~cancel", context.t("form.cancel")))
    values = dict(form.question_values(context))
    context.say(
        context.t(step.question, **values),
        title=context.t(step.title, **values) if step.title else "",
        choices=choices,
        request_location=step.kind is Input.LOCATION,
    )


def _show_review(context: Context, form: Form, answers: Answers) -> None:
    context.say(
        "\n".join(summary(context.content, context.lang, context.tz, form, answers)),
        title=context.t(f"{form.texts}.review"),
        choices=[
            Choice(f"{form.name}:~ok", context.t(f"{form.texts}.confirm")),
            Choice(f"{form.name}:~edit", context.t("form.edit")),
            Choice(f"{form.name}:~back", context.t("form.back")),
            Choice(f"{form.name}:~cancel", context.t("form.cancel")),
        ],
    )


def _show_edit_menu(context: Context, form: Form, answers: Answers) -> None:
    choices = [
        Choice(f"{form.name}:~edit:{step.key}", context.t(f"{form.texts}.labels.{step.key}"))
        for step in form.steps
        if step.summary and step.key in answers and step.applies(answers)
    ]
    choices.append(Choice(f"{form.name}:~back", context.t("form.back")))
    context.say(context.t("form.which_field"), choices=choices)


def summary(content: Content, lang: str, tz: ZoneInfo, form: Form, answers: Answers) -> list[str]:
    """'Label: answer' lines for every answered step, in `lang`."""
    return [
        f"{content.text(lang, f'{form.texts}.labels.{step.key}')}: "
        f"{render(content, lang, tz, step, answers)}"
        for step in form.steps
        if step.summary and answers.get(step.key) is not None and step.applies(answers)
    ]


def render(content: Content, lang: str, tz: ZoneInfo, step: Step, answers: Answers) -> str:
    """An answer as a person reads it."""
    value = answers.get(step.key)
    if value is None:
        return "—"
    if value == UNKNOWN:
        return content.text(lang, "form.unknown")
    options = dict(content.options(lang, step.options)) if step.options is not None else {}
    match step.kind:
        case Input.CHOICE:
            return options.get(str(value), str(value))
        case Input.MULTI:
            return ", ".join(options.get(str(v), str(v)) for v in value) or "—"
        case Input.LOCATION if "text" in value:
            return str(value["text"])
        case Input.LOCATION:
            return f"{value['lat']:.5f}, {value['lon']:.5f}"
        case Input.MEDIA:
            return content.text(lang, "form.files", count=len(value))
        case Input.TIME | Input.DATETIME:
            return content.format_when(lang, datetime.fromisoformat(value), tz)
        case Input.TEXT if isinstance(value, dict):
            return content.text(lang, "form.voice_note")
    return str(value)


# -- parsing ------------------------------------------------------------------------------


async def _parse(context: Context, form: Form, step: Step, picked: str | None) -> Any:
    event = context.event
    if step.kind in (Input.CHOICE, Input.MULTI):
        if picked is None:
            raise Invalid("form.pick_one")
        valid = {oid for oid, _ in _options(context, step, _answers(context))}
        if picked not in valid:
            raise Invalid("core.stale_choice")
        if step.kind is Input.CHOICE:
            return _checked(context, step, picked)
        selection = list(context.state.data.get("multi", []))
        selection = (
            [s for s in selection if s != picked]
            if picked in selection
            else [
                *selection,
                picked,
            ]
        )
        _set(context, multi=selection)
        _ask(context, form, step)
        return _PENDING
    if picked is not None:
        raise Invalid("core.stale_choice")
    if step.kind is Input.MEDIA:
        return _take_media(context, form, step)
    if step.kind is Input.LOCATION:
        return _checked(context, step, _location(context, step))
    voice = event.attachment is not None and event.attachment.kind is AttachmentKind.VOICE
    if voice and step.accept_voice and event.attachment is not None:
        return {"voice": event.attachment.to_json()}
    if event.kind is not EventKind.TEXT or not event.text:
        raise Invalid("form.need_text" if step.kind is Input.TEXT else "form.need_value")
    text = event.text
    match step.kind:
        case Input.TEXT:
            return _checked(context, step, text)
        case Input.NUMBER:
            return _checked(context, step, _number(text, step))
        case Input.TIME | Input.DATETIME:
            moment = parse_moment(text, step.kind, context.now(), context.tz)
            return _checked(context, step, moment.isoformat())
    raise Invalid("form.need_value")


def _checked(context: Context, step: Step, value: Any) -> Any:
    if step.check is not None:
        problem = step.check(context, value)
        if problem:
            raise Invalid(problem)
    return value


def _number(text: str, step: Step) -> int:
    cleaned = text.strip().rstrip("+").strip()
    if not re.fullmatch(r"\d{1,6}", cleaned):
        raise Invalid("form.need_number", minimum=step.minimum, maximum=step.maximum)
    number = int(cleaned)
    if not step.minimum <= number <= step.maximum:
        raise Invalid("form.need_number", minimum=step.minimum, maximum=step.maximum)
    return number


def _location(context: Context, step: Step) -> dict[str, Any]:
    event = context.event
    if event.location is not None:
        if not event.location.valid:
            raise Invalid("form.bad_location")
        return {"lat": event.location.latitude, "lon": event.location.longitude}
    if step.allow_text and event.kind is EventKind.TEXT and event.text:
        return {"text": event.text}
    raise Invalid("form.need_location")


def _take_media(context: Context, form: Form, step: Step) -> Any:
    event = context.event
    limit = context.settings.limits.max_attachments
    if event.attachment_error == "too_large":
        raise Invalid("form.file_too_large", limit=context.settings.limits.max_attachment_mb)
    if event.attachment is None:
        raise Invalid("form.need_media")
    media = list(context.state.data.get("media", []))
    if len(media) >= limit:
        raise Invalid("form.too_many_files", limit=limit)
    media.append(event.attachment.to_json())
    _set(context, media=media)
    context.say(context.t("form.file_received", count=len(media), limit=limit))
    if len(media) >= limit:
        return media
    _ask(context, form, step)
    return _PENDING


TIME_FORMATS = ("%H:%M", "%H.%M", "%H%M", "%H")
DATETIME_FORMATS = (
    "%d.%m.%Y %H:%M",
    "%d.%m.%y %H:%M",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y",
    "%Y-%m-%d",
)


def parse_moment(text: str, kind: Input, now: datetime, tz: Any) -> datetime:
    """A time today or a date and time, in the deployment's zone; never in the future."""
    cleaned = " ".join(text.replace("Uhr", "").replace("h", "").split())
    local_now = now.astimezone(tz)
    formats = TIME_FORMATS if kind is Input.TIME else DATETIME_FORMATS
    for pattern in formats:
        try:
            parsed = datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
        if kind is Input.TIME:
            parsed = local_now.replace(
                hour=parsed.hour, minute=parsed.minute, second=0, microsecond=0
            )
        else:
            parsed = parsed.replace(tzinfo=tz)
        if parsed > local_now + timedelta(minutes=2):
            raise Invalid("form.future_time")
        if parsed < local_now - timedelta(days=366):
            raise Invalid("form.too_old")
        return parsed
    raise Invalid("form.need_time" if kind is Input.TIME else "form.need_datetime")
