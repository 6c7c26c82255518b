"""What a form shows: the question with its choices and controls, the summary, the edit menu.

Answers are choices (numbered where there are no buttons); controls — back, skip,
cancel, "that's all" — carry the command that does the same, so a number typed at a
question that wants a number, a time or a text is always the answer.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.core.context import Context
from bot.core.events import Choice, Reply
from bot.core.forms.model import UNKNOWN, Answers, Form, FormState, Input, Step
from bot.core.i18n import Content


def control(form: Form, name: str, label: str, command: str = "") -> Choice:
    """A control of `form`: `<form>:~<name>`, typed as `/command` where there are no buttons."""
    return Choice(f"{form.name}:~{name}", label, command or name.split(":", 1)[0])


def options(context: Context, step: Step) -> list[tuple[str, str]]:
    return [] if step.options is None else context.content.options(context.lang, step.options)


def question(context: Context, form: Form, state: FormState, step: Step) -> Reply:
    """The question of `step` with its answers as choices and its controls."""
    prefix = f"{form.name}:{step.key}:"
    choices: list[Choice] = []
    if step.kind is Input.CHOICE:
        choices = [Choice(prefix + oid, label) for oid, label in options(context, step)]
    elif step.kind is Input.MULTI:
        picked = set(state.multi)
        choices = [
            Choice(prefix + oid, ("☑ " if oid in picked else "☐ ") + label)
            for oid, label in options(context, step)
        ]
    if step.extra is not None:
        choices.extend(step.extra(context))
    if step.kind in (Input.MULTI, Input.MEDIA) and (step.kind is Input.MULTI or state.media):
        choices.append(control(form, "done", context.t("form.done")))
    if step.unknown:
        choices.append(control(form, "unknown", context.t("form.unknown")))
    if step.optional and not (step.kind is Input.MEDIA and state.media):
        choices.append(control(form, "skip", context.t("form.skip")))
    if step.group:
        choices.append(control(form, "done", context.t("form.thats_all")))
    if step.section and form.review:
        choices.append(control(form, "review", context.t("form.to_summary"), "summary"))
    if state.trail or state.editing:
        choices.append(control(form, "back", context.t("form.back")))
    choices.append(control(form, "cancel", context.t("form.cancel")))
    values = dict(form.question_values(context))
    title = step.title or form.heading
    return Reply(
        context.t(step.question, **values),
        title=context.t(title, **values) if title else "",
        choices=choices,
        request_location=step.kind is Input.LOCATION,
        share_label=context.t("keyboard.share_location") if step.kind is Input.LOCATION else "",
    )


def review(context: Context, form: Form, answers: Answers, text: str = "") -> Reply:
    """The summary with its send buttons; `text` replaces it (e.g. "2 files attached")."""
    lines = summary(context.content, context.lang, context.tz, form, answers)
    if form.submit_options is None:
        confirm = form.confirm or f"{form.texts}.confirm"
        choices = [Choice(f"{form.name}:~ok", context.t(confirm))]
    else:
        choices = [
            Choice(f"{form.name}:~ok:{oid}", label)
            for oid, label in context.content.options(context.lang, form.submit_options)
        ]
    if form.section and any(s.section == form.section for s in form.steps):
        choices.append(
            Choice(
                f"{form.name}:~open:{form.section}", context.t(f"{form.texts}.add_{form.section}")
            )
        )
    choices.append(Choice(f"{form.name}:~edit", context.t("form.edit")))
    choices.append(control(form, "back", context.t("form.back")))
    choices.append(control(form, "cancel", context.t("form.cancel")))
    return Reply(
        text or "\n".join(lines),
        title="" if text else context.t(form.review_title or f"{form.texts}.review"),
        choices=choices,
    )


def edit_menu(context: Context, form: Form, answers: Answers) -> Reply:
    choices = [
        Choice(f"{form.name}:~edit:{step.key}", context.t(f"{form.texts}.labels.{step.key}"))
        for step in form.steps
        if step.summary and step.key in answers and step.applies(answers)
    ]
    choices.append(control(form, "back", context.t("form.back")))
    return Reply(context.t("form.which_field"), choices=choices)


def cancel_question(context: Context, form: Form) -> Reply:
    return Reply(
        context.t("form.really_cancel"),
        choices=[
            Choice(f"{form.name}:~discard", context.t("form.discard")),
            Choice(f"{form.name}:~keep", context.t("form.keep")),
        ],
    )


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
    labels = dict(content.options(lang, step.options)) if step.options is not None else {}
    match step.kind:
        case Input.CHOICE:
            return labels.get(str(value), str(value))
        case Input.MULTI:
            return ", ".join(labels.get(str(v), str(v)) for v in value) or content.text(
                lang, "form.all"
            )
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
