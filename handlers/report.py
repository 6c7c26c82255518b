"""Report a suspicious observation: /report, the menu's first entry, or free text.

```mermaid
flowchart TD
    urgent{happening now?} -- yes --> emergency[call 110 first] --> category
    urgent -- no --> category --> place --> motorway --> when
    when --> seen{persons / vehicles?}
    seen --> person[person fields] & vehicle[vehicle fields] --> description
    description --> media --> contact --> review{summary: edit / send}
    review -- send --> reference[reference + coordinators notified]
```
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Attachment, Choice, Location, Reply
from bot.core.forms import Answers, Form, Input, Step
from bot.core.router import Router
from bot.storage import repos
from bot.storage.models import Report
from handlers.coordinator import triage_choices

router = Router("report")


def _is(key: str, *values: str) -> Any:
    return lambda answers: answers.get(key) in values


_person = _is("seen", "persons", "both")
_vehicle = _is("seen", "vehicles", "both")
_motorway = _is("motorway", "yes")


def _described(key: str, question: str, when: Any, group: str, **extra: Any) -> Step:
    """A field of the suspect-description sheet: skippable, 'unknown', 'that's all'."""
    kind = extra.pop("kind", Input.TEXT)
    return Step(key, kind, question, optional=True, unknown=True, when=when, group=group, **extra)


def _road(key: str) -> Step:
    """Motorway details: each optional, 'that's all' ends them."""
    return Step(key, Input.TEXT, f"report.q.{key}", optional=True, when=_motorway, group="road")


STEPS = (
    Step("urgent", Input.CHOICE, "report.q.urgent", options="yes_no", summary=False),
    Step(
        "emergency",
        Input.CHOICE,
        "report.q.emergency",
        options="after_call",
        title="report.emergency_title",
        when=_is("urgent", "yes"),
        summary=False,
    ),
    Step("category", Input.CHOICE, "report.q.category", options="categories"),
    Step("place", Input.LOCATION, "report.q.place", allow_text=True),
    Step("motorway", Input.CHOICE, "report.q.motorway", options="yes_no", optional=True),
    _road("road"),
    _road("direction"),
    _road("marker"),
    _road("parking"),
    Step("when", Input.CHOICE, "report.q.when", options="when"),
    Step("when_time", Input.TIME, "report.q.when_time", when=_is("when", "today")),
    Step("when_at", Input.DATETIME, "report.q.when_at", when=_is("when", "other")),
    Step("seen", Input.CHOICE, "report.q.seen", options="seen"),
    _described("person_count", "report.q.person_count", _person, "person", kind=Input.NUMBER,
               minimum=1, maximum=50),
    _described("sex", "report.q.sex", _person, "person", kind=Input.CHOICE, options="sex"),
    _described("age", "report.q.age", _person, "person", kind=Input.CHOICE, options="age"),
    _described("height", "report.q.height", _person, "person", kind=Input.CHOICE,
               options="height"),
    _described("build", "report.q.build", _person, "person", kind=Input.CHOICE, options="build"),
    _described("hair", "report.q.hair", _person, "person"),
    _described("clothing", "report.q.clothing", _person, "person", accept_voice=True),
    _described("features", "report.q.features", _person, "person", accept_voice=True),
    _described("speech", "report.q.speech", _person, "person"),
    _described("weapon", "report.q.weapon", _person, "person", kind=Input.CHOICE,
               options="yes_no"),
    _described("vehicle_type", "report.q.vehicle_type", _vehicle, "vehicle", kind=Input.CHOICE,
               options="vehicle_types"),
    _described("make", "report.q.make", _vehicle, "vehicle"),
    _described("model", "report.q.model", _vehicle, "vehicle"),
    _described("colour", "report.q.colour", _vehicle, "vehicle"),
    _described("plate", "report.q.plate", _vehicle, "vehicle"),
    _described("plate_country", "report.q.plate_country", _vehicle, "vehicle",
               kind=Input.CHOICE, options="countries"),
    _described("vehicle_direction", "report.q.vehicle_direction", _vehicle, "vehicle"),
    Step("description", Input.TEXT, "report.q.description", optional=True, accept_voice=True),
    Step("media", Input.MEDIA, "report.q.media", optional=True),
    Step("contact", Input.CHOICE, "report.q.contact", options="contact"),
)  # fmt: skip


def _values(context: Context) -> dict[str, Any]:
    return {"emergency": context.settings.bot.emergency_number}


async def _submit(context: Context, answers: Answers) -> None:
    """Store the report with a reference, then queue it for every coordinator chat."""
    if await _over_limit(context):
        return
    now = context.now()
    clean = {key: value for key, value in answers.items() if not key.startswith("_")}
    for attachment in _attachments(clean):
        await repos.remember_media(context.session, attachment.to_json())
    report = await repos.create_report(
        context.session,
        prefix=context.settings.bot.reference_prefix,
        user=context.user,
        category=str(clean["category"]),
        answers=clean,
        contact_allowed=clean.get("contact") == "yes",
        now=now,
    )
    await context.audit("report_submitted", report.reference)
    for destination in context.coordinator_destinations():
        await context.send_to(
            destination,
            coordinator_view(context, report),
            kind="report",
            subject_user_id=context.user.id,
        )
    watched = (
        "report.watched"
        if context.settings.bot.reports_watched_around_the_clock
        else ("report.not_watched")
    )
    context.say(
        "\n\n".join(
            (
                context.t("report.thanks", reference=report.reference),
                context.t(watched),
                context.t("report.not_110", emergency=context.settings.bot.emergency_number),
            )
        ),
        title=context.t("report.sent_title"),
        choices=[Choice("/myreports", context.t("report.my_reports")),
                 Choice("/menu", context.t("menu.open"))],
    )  # fmt: skip


FORM = Form(
    name="rep",
    texts="report",
    steps=STEPS,
    on_submit=_submit,
    question_values=_values,
)
forms.register(router, FORM)


def _attachments(answers: Answers) -> list[Attachment]:
    found = [Attachment.from_json(item) for item in answers.get("media") or []]
    for value in answers.values():
        if isinstance(value, dict) and "voice" in value:
            found.append(Attachment.from_json(value["voice"]))
    return found


def coordinator_view(context: Context, report: Report) -> list[Reply]:
    """The report as coordinators read it: every answer, the place, the files, triage."""
    lang = context.settings.bot.default_language
    content = context.content
    answers = report.answers
    category = content.label(lang, "categories", report.category)
    lines = forms.summary(content, lang, context.tz, FORM, answers)
    place = answers.get("place") or {}
    location = None
    if "lat" in place:
        location = Location(float(place["lat"]), float(place["lon"]))
        lines.append(location.map_link())
    lines.append(content.text(lang, "report.reporter", transport=report.transport))
    reply = Reply(
        text="\n".join(lines),
        title=f"{report.reference} · {category}",
        location=location,
        attachments=_attachments(answers),
        choices=triage_choices(context, report),
    )
    return [reply]


async def _over_limit(context: Context) -> bool:
    """The per-user report limit; answered politely, never silently."""
    limit = context.settings.limits.reports_per_hour
    since = context.now() - timedelta(hours=1)
    if await repos.reports_since(context.connection, context.user.id, since) < limit:
        return False
    await context.audit("report_limit", "", limit=limit)
    context.say(
        context.t("report.limit", limit=limit, emergency=context.settings.bot.emergency_number)
    )
    return True


@router.command("report", "melden", "zglos")
async def report(context: Context) -> None:
    """Start (or resume) the report dialogue."""
    if context.flow == FORM.name:
        context.say(context.t("report.resume"))
        await forms.resume(context, FORM)
        return
    if await _over_limit(context):
        return
    await forms.start(context, FORM)


@router.command("myreports")
async def my_reports(context: Context) -> None:
    """The reporter's own reports and their status."""
    found = await repos.reports_of(context.session, context.user.id)
    if not found:
        context.say(
            context.t("report.none_yet"), choices=[Choice("/report", context.t("report.new"))]
        )
        return
    lines = [
        context.t(
            "report.line",
            reference=item.reference,
            date=context.content.format_when(context.lang, item.created_at, context.tz),
            category=context.content.label(context.lang, "categories", item.category),
            status=context.content.label(context.lang, "status", item.status),
        )
        for item in found
    ]
    context.say("\n".join(lines), title=context.t("report.my_reports"))
