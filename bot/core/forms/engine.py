"""The form engine: asks, validates and re-asks with a hint, goes back, skips, opens a
section, shows a summary in which every answer can be edited, and calls `on_submit` once.

Choice ids are `<form>:<step>:<value>` for answers and `<form>:~<control>` for controls, so
a button from an old question is recognised as stale. The draft is a `FormState` in the
dialogue state's `data`, read at the start of each event and written back at its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.core.context import Context
from bot.core.events import AttachmentKind, Choice, EventKind, Reply
from bot.core.forms import rendering
from bot.core.forms.model import TYPED, UNKNOWN, Answers, Form, FormState, Input, Invalid, Step
from bot.core.forms.parsing import parse_typed
from bot.core.router import Router

# Every registered form by name.
FORMS: dict[str, Form] = {}


def register(router: Router, form: Form) -> None:
    """Make `form` a flow of `router`; the Core shows its open question after interruptions."""

    async def run(context: Context) -> None:
        await handle(context, form)

    async def again(context: Context) -> None:
        if form.optional_for_staff and context.is_coordinator:
            return
        await resume(context, form)

    router.flow(form.name, resume=again)(run)
    FORMS[form.name] = form


async def start(context: Context, form: Form, answers: Answers | None = None) -> None:
    """Begin `form`; pre-filled answers are not asked again."""
    state = FormState(answers=dict(answers or {}), opened=form.opened)
    context.start_flow(form.name, state.dump())
    run = _Run(context, form, state)
    if context.event.fields:
        await run.submit_whole(context.event.fields)  # a form sent whole (the console)
    else:
        await run.advance()


async def resume(context: Context, form: Form) -> None:
    """Show the open question (or the summary) of `form` again."""
    await _Run(context, form, FormState.load(context.state.data)).reask()


async def handle(context: Context, form: Form) -> None:
    """One event of a person who is in `form`."""
    await _Run(context, form, FormState.load(context.state.data)).handle()


def hold(context: Context, form: Form, answers: Answers) -> None:
    """Keep a draft whose sending was refused (a limit): it waits at its summary."""
    kept = {key: value for key, value in answers.items() if key != "_submit"}
    context.start_flow(form.name, FormState(answers=kept, mode="review").dump())


def applicable(form: Form, answers: Answers) -> Answers:
    """The answers that count: those of steps that apply (after edits), and `_` extras."""
    keys = {step.key for step in form.steps if step.applies(answers)}
    return {k: v for k, v in answers.items() if k in keys or k.startswith("_")}


class _Run:
    """One event's work on one draft; `save` writes the draft back into the state."""

    def __init__(self, context: Context, form: Form, state: FormState) -> None:
        self.context = context
        self.form = form
        self.state = state
        # The question whose button this event pressed, if it was the open one.
        self.pressed: Step | None = None

    def save(self) -> None:
        if self.state.mode != "ask":
            self.state.input = ""  # only options are shown: a number picks one
        if self.context.flow == self.form.name:
            self.context.state.data = self.state.dump()

    def say(self, key: str, **values: Any) -> None:
        self.context.say(self.context.t(key, **values))

    # -- events ---------------------------------------------------------------------------

    async def handle(self) -> None:
        event, state = self.context.event, self.state
        if event.kind is EventKind.CHOICE:
            value = event.choice.removeprefix(f"{self.form.name}:")
            if state.mode == "ask" and state.step:
                self.pressed = self.form.step(state.step)
            if value.startswith("~"):
                await self.control(value[1:])
                return
            step_key, _, picked = value.partition(":")
            if state.mode != "ask" or step_key != state.step:
                await self.stale()
                return
            await self.answer(self.form.step(step_key), picked)
            return
        if event.kind is EventKind.UNSUPPORTED:
            self.say("core.cannot_use")
            await self.reask()
            return
        if event.kind is EventKind.ATTACHMENT and event.file is not None and self.wants_file():
            await self.context.take_file()  # fetched from the platform only now
        if state.mode == "review" and event.kind is EventKind.ATTACHMENT:
            await self.attach_in_review()
            return
        if state.mode != "ask" or not state.step:
            await self.reask()
            return
        await self.answer(self.form.step(state.step), None)

    def wants_file(self) -> bool:
        """Whether the open step (or the summary) takes the file the person sent."""
        state, file = self.state, self.context.event.file
        if state.mode == "review":
            return any(step.kind is Input.MEDIA for step in self.form.steps)
        if state.mode != "ask" or not state.step or file is None:
            return False
        step = self.form.step(state.step)
        voice = file.kind is AttachmentKind.VOICE
        return step.kind is Input.MEDIA or (voice and (step.accept_voice or bool(step.text_to)))

    async def stale(self) -> None:
        """A press on an old question: a toast, and the open question once more."""
        self.context.toast(self.context.t("core.stale_choice"))
        await self.reask()

    async def control(self, control: str) -> None:
        state, answers = self.state, self.state.answers
        step = self.form.step(state.step) if state.step else None
        asking = state.mode == "ask" and step is not None
        name, _, arg = control.partition(":")
        match name:
            case "cancel":
                # Typed twice, a cancel needs no second confirmation.
                if state.mode != "cancel" and self.form.confirm_cancel and self.has_content():
                    state.before_cancel, state.mode = state.mode, "cancel"
                    self.save()
                    self.context.replies.append(rendering.cancel_question(self.context, self.form))
                else:
                    self.discard()
            case "discard":
                self.discard()
            case "keep" if state.mode == "cancel":
                state.mode = state.before_cancel
                await self.reask()
            case "back" if state.mode in ("ask", "review", "pick"):
                await self.back()
            case "skip" if asking and step is not None:
                if step.optional or step.unknown:
                    await self.store(step, None)
                else:
                    self.say("form.required")
                    await self.reask()
            case "unknown" if asking and step is not None and step.unknown:
                await self.store(step, UNKNOWN)
            case "done" if asking and step is not None:
                await self.finish_step(step)
            case "review" if asking and step is not None and step.section:
                # Leave the rest of the opened section unanswered and go to the summary.
                for other in self.form.steps:
                    if other.section == step.section and other.key not in answers:
                        answers[other.key] = None
                await self.advance()
            case "open" if state.mode == "review" and arg:
                state.opened = arg
                await self.advance()
            case "ok" if state.mode == "review":
                await self.submit(arg)
            case "edit" if state.mode == "review" and not arg:
                state.mode = "pick"
                self.save()
                self.context.replies.append(rendering.edit_menu(self.context, self.form, answers))
            case "edit" if state.mode in ("review", "pick") and arg in answers:
                previous = answers.get(arg)
                state.mode, state.step, state.editing = "ask", arg, True
                state.multi = previous if isinstance(previous, list) else []
                await self.reask()
            case _:
                await self.stale()

    def has_content(self) -> bool:
        summarised = {step.key for step in self.form.steps if step.summary}
        given = [k for k, v in self.state.answers.items() if k in summarised and v is not None]
        return bool(given or self.state.media)

    def discard(self) -> None:
        self.context.end_flow()
        self.context.say(
            self.context.t("form.cancelled"),
            choices=[Choice("/menu", self.context.t("menu.open"))],
        )

    async def back(self) -> None:
        state = self.state
        if state.mode in ("review", "pick") and state.trail:
            state.mode, state.step = "ask", state.trail.pop()
            state.editing = False
        elif state.trail:
            previous = state.trail.pop()
            state.answers.pop(previous, None)
            state.step, state.mode, state.multi, state.media = previous, "ask", [], []
            state.editing = False
        else:
            self.say("form.at_start")
        await self.reask()

    async def finish_step(self, step: Step) -> None:
        """'Done' on a multi or media step stores what was gathered; elsewhere it ends the group."""
        state = self.state
        if step.kind is Input.MULTI:
            await self.store(step, list(state.multi))
        elif step.kind is Input.MEDIA:
            await self.store(step, list(state.media) or None)
        elif step.group:
            for other in self.form.steps:
                if other.group == step.group and other.key not in state.answers:
                    state.answers[other.key] = None
            await self.advance()
        else:
            await self.reask()

    async def answer(self, step: Step, picked: str | None) -> None:
        try:
            value = self.parse(step, picked)
        except Invalid as problem:
            self.say(problem.key, **problem.values)
            await self.reask()
            return
        if value is _PENDING:
            self.save()
            return
        if isinstance(value, _Typed):
            # A choice step answered in words: the words go to `text_to`.
            self.state.answers[step.text_to] = value.text
            value = value.option
        await self.store(step, value)

    async def store(self, step: Step, value: Any) -> None:
        state = self.state
        state.answers[step.key] = value
        if not state.editing:
            state.trail.append(step.key)
        state.multi, state.media, state.input = [], [], ""
        if self.form.on_answer is not None:
            self.form.on_answer(self.context, step.key, value)
        await self.advance()

    async def advance(self) -> None:
        """Ask the next open step, or show the summary, or submit."""
        state, answers = self.state, self.state.answers
        for step in self.form.steps:
            if step.section and step.section != state.opened:
                continue
            if step.applies(answers) and step.key not in answers:
                state.step, state.mode = step.key, "ask"
                self.ask(step)
                return
        if self.form.review:
            state.mode, state.step, state.editing = "review", "", False
            self.save()
            self.context.replies.append(
                self.following(rendering.review(self.context, self.form, answers))
            )
        else:
            await self.submit("")

    async def submit(self, option: str) -> None:
        """Hand the answers to the form's `on_submit`; the draft ends first, so a repeated
        'send' finds no draft to send again."""
        answers = applicable(self.form, self.state.answers)
        if option:
            answers["_submit"] = option
        self.context.end_flow()
        await self.form.on_submit(self.context, answers)

    async def submit_whole(self, fields: Mapping[str, str]) -> None:
        """A form sent whole (the console's forms): every step that applies is answered, in
        order, from `fields` by the parsers a typed or pressed answer goes through; the
        first answer that does not fit is told with its hint and nothing is submitted.
        Then the same `on_submit` as at the end of a dialogue. `fields["_submit"]` picks a
        send option."""
        state, event = self.state, self.context.event
        try:
            for step in self.form.steps:
                if step.section and step.section != state.opened and step.key not in fields:
                    continue
                if step.key in state.answers or not step.applies(state.answers):
                    continue
                raw = fields.get(step.key, "").strip()
                if not raw and step.kind is Input.MULTI:
                    # Nothing ticked: what "Done" with nothing ticked stores in the chat.
                    state.answers[step.key] = self.checked(step, [])
                    continue
                if not raw:
                    if not (step.optional or step.unknown):
                        raise Invalid("form.required")
                    state.answers[step.key] = None
                    continue
                value = self.parse_whole(step, raw)
                if isinstance(value, _Typed):
                    state.answers[step.text_to] = value.text
                    value = value.option
                state.answers[step.key] = value
                if self.form.on_answer is not None:
                    self.form.on_answer(self.context, step.key, value)
        except Invalid as problem:
            self.context.end_flow()
            self.say(problem.key, **problem.values)
            return
        finally:
            self.context.event = event
        await self.submit(fields.get("_submit", "") if self.form.review else "")

    def parse_whole(self, step: Step, raw: str) -> Any:
        """One field of a form sent whole: an option id (several, comma-separated, for a
        multi step) or what a person would type."""
        if step.kind is Input.MULTI:
            valid = {oid for oid, _ in rendering.options(self.context, step)}
            picked = [part.strip() for part in raw.split(",") if part.strip()]
            if not picked or not set(picked) <= valid:
                raise Invalid("core.stale_choice")
            return self.checked(step, picked)
        if step.kind is Input.CHOICE and not step.text_to:
            return self.parse(step, raw)
        self.context.event = replace(self.context.event, kind=EventKind.TEXT, text=raw)
        return self.parse(step, None)

    async def reask(self) -> None:
        state = self.state
        if state.mode == "review":
            self.save()
            self.context.replies.append(rendering.review(self.context, self.form, state.answers))
        elif state.mode == "pick":
            self.save()
            self.context.replies.append(rendering.edit_menu(self.context, self.form, state.answers))
        elif state.mode == "cancel":
            self.save()
            self.context.replies.append(rendering.cancel_question(self.context, self.form))
        elif state.step:
            self.ask(self.form.step(state.step))
        else:
            await self.advance()

    def ask(self, step: Step) -> None:
        self.state.input = str(step.kind)
        if step.kind is Input.CHOICE and step.text_to:
            self.state.input = "choice_or_text"
        self.save()
        reply = rendering.question(self.context, self.form, self.state, step)
        self.context.replies.append(self.following(reply))

    def following(self, reply: Reply) -> Reply:
        """A question or the summary after a press on the open question: it may take that
        question's place (see `Step.stays`)."""
        reply.next_question = self.pressed is not None and not self.pressed.stays
        return reply

    async def attach_in_review(self) -> None:
        """A file sent at the summary joins the report's files."""
        media_steps = [s for s in self.form.steps if s.kind is Input.MEDIA]
        if not media_steps:
            self.say("core.cannot_use")
            await self.reask()
            return
        step = media_steps[0]
        files = list(self.state.answers.get(step.key) or [])
        try:
            files = self.take_file(files)
        except Invalid as problem:
            self.say(problem.key, **problem.values)
            await self.reask()
            return
        self.state.answers[step.key] = files
        count = self.context.t("form.files", count=len(files))
        text = self.context.t("form.attached", files=count)
        self.save()
        self.context.replies.append(
            rendering.review(self.context, self.form, self.state.answers, text=text)
        )

    # -- parsing --------------------------------------------------------------------------

    def parse(self, step: Step, picked: str | None) -> Any:
        context, event = self.context, self.context.event
        if picked is not None:
            if step.kind not in (Input.CHOICE, Input.MULTI):
                raise Invalid("core.stale_choice")
            valid = {oid for oid, _ in rendering.options(context, step)}
            if picked not in valid:
                raise Invalid("core.stale_choice")
            if step.kind is Input.CHOICE:
                return self.checked(step, picked)
            self.state.multi = (
                [s for s in self.state.multi if s != picked]
                if picked in self.state.multi
                else [*self.state.multi, picked]
            )
            self.ask(step)
            return _PENDING
        voice = event.attachment is not None and event.attachment.kind is AttachmentKind.VOICE
        if step.kind is Input.MEDIA:
            return self.media_answer(step)
        if step.kind is Input.LOCATION and event.location is not None:
            if not event.location.valid:
                raise Invalid("form.bad_location")
            place = {"lat": event.location.latitude, "lon": event.location.longitude}
            return self.checked(step, place)
        if step.kind in (Input.CHOICE, Input.MULTI):
            if step.text_to and (voice or (event.kind is EventKind.TEXT and event.text)):
                words = (
                    {"voice": event.attachment.to_json()} if voice and event.attachment else None
                )
                text = event.text if words is None else ""
                option = step.infer(context, text) if step.infer is not None else ""
                return _Typed(option, words if words is not None else text)
            if event.kind in (EventKind.ATTACHMENT, EventKind.LOCATION):
                raise Invalid("core.cannot_use")
            raise Invalid("form.pick_one")
        if voice and step.accept_voice and event.attachment is not None:
            return {"voice": event.attachment.to_json()}
        if event.kind is not EventKind.TEXT or not event.text:
            if event.kind in (EventKind.ATTACHMENT, EventKind.LOCATION):
                raise Invalid("core.cannot_use")
            raise Invalid("form.need_text" if step.kind is Input.TEXT else "form.need_value")
        if step.kind not in TYPED:
            raise Invalid("form.need_value")
        return self.checked(step, parse_typed(step, event.text, context.now(), context.tz))

    def checked(self, step: Step, value: Any) -> Any:
        if step.check is not None:
            problem = step.check(self.context, value)
            if problem:
                raise Invalid(problem)
        return value

    def media_answer(self, step: Step) -> Any:
        """With a summary to come, one file answers the step (more can be sent at the
        summary); without one, files are gathered until 'Done'."""
        files = self.take_file(list(self.state.media))
        if self.form.review or len(files) >= self.context.settings.limits.max_attachments:
            return files
        self.state.media = files
        limit = self.context.settings.limits.max_attachments
        self.say("form.file_received", count=len(files), limit=limit)
        self.ask(step)
        return _PENDING

    def take_file(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        event, limits = self.context.event, self.context.settings.limits
        if event.attachment_error == "too_large":
            raise Invalid("form.file_too_large", limit=f"{limits.max_attachment_mb:g}")
        if event.attachment_error == "unavailable":
            raise Invalid("form.file_unavailable")
        if event.attachment is None:
            raise Invalid("form.need_media")
        if len(files) >= limits.max_attachments:
            raise Invalid("form.too_many_files", limit=limits.max_attachments)
        return [*files, event.attachment.to_json()]


class _Typed:
    """A choice step answered in words: the inferred option and the words."""

    def __init__(self, option: str, text: Any) -> None:
        self.option = option
        self.text = text


_PENDING = object()
