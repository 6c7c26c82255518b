"""Report a suspicious observation: /report, the menu's first entry, or free text.

Essentials first — what, where, a photo — then the summary with the send buttons; the
suspect-description sheet (time, people, vehicle, motorway, phone) is offered there and
after sending, never forced through. Six inputs from /report to a reference:

```mermaid
flowchart TD
    urgent{happening now?} -- yes --> emergency[call 110 first] --> what
    urgent -- no --> what[what: words, voice note, or a category]
    what --> place --> media[photo, or skip] --> review{summary}
    review -- add details --> details[time · people · vehicle · motorway · phone] --> review
    review -- send: contact / anonymous --> reference[reference, coordinators notified]
    reference -- add details later --> more[/details SP-…/] --> update[update to the coordinators]
```
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.core import forms
from bot.core.context import Context, Destination
from bot.core.events import Attachment, Choice, Location, Reply
from bot.core.forms import Answers, Form, FormState, Input, Step
from bot.core.intents import mentions
from bot.core.jobs import Every
from bot.core.router import Router
from bot.storage import repos
from bot.storage.models import Report, utcnow

if TYPE_CHECKING:
    from bot.runtime import Runtime

router = Router("report")
DETAILS = "details"
PHONE = re.compile(r"\+?[0-9][0-9 ()/.-]{4,24}")


def _is(key: str, *values: str) -> Any:
    return lambda answers: answers.get(key) in values


_person = _is("seen", "persons", "both")
_vehicle = _is("seen", "vehicles", "both")
_motorway = _is("motorway", "yes")


def _described(key: str, question: str, when: Any, group: str, **extra: Any) -> Step:
    """A field of the suspect-description sheet: skippable, 'unknown', 'that's all'."""
    kind = extra.pop("kind", Input.TEXT)
    return Step(
        key, kind, question, optional=True, unknown=True, when=when, group=group,
        section=DETAILS, **extra,
    )  # fmt: skip


def _road(key: str) -> Step:
    """Motorway details: each optional, 'that's all' ends them."""
    return Step(
        key, Input.TEXT, f"report.q.{key}", optional=True, when=_motorway, group="road",
        section=DETAILS,
    )  # fmt: skip


# The specific categories first: "someone is cutting tarpaulins" is cargo theft.
INFERRED = ("robbery", "gps_tracker", "cargo_theft", "fuel_theft", "vehicle", "person",
            "parking_activity")  # fmt: skip


def infer_category(context: Context, text: str) -> str:
    """The category a description names ("Plane aufgeschlitzt" -> cargo theft), in any
    language; "other" when none does. Coordinators see the words beside it."""
    for category in INFERRED:
        for _lang, word in context.content.keywords(f"category_{category}"):
            if mentions(text, word):
                return category
    return "other"


def _phone(_context: Context, value: Any) -> str | None:
    return None if PHONE.fullmatch(str(value).strip()) else "report.bad_phone"


ESSENTIALS = (
    Step("urgent", Input.CHOICE, "report.q.urgent", options="yes_no", summary=False,
         stays=True),
    Step("emergency", Input.CHOICE, "report.q.emergency", options="after_call",
         title="report.emergency_title", when=_is("urgent", "yes"), summary=False, stays=True),
    Step("category", Input.CHOICE, "report.q.category", options="categories",
         text_to="description", infer=infer_category),
    Step("description", Input.TEXT, "report.q.description", optional=True, accept_voice=True),
    Step("place", Input.LOCATION, "report.q.place", allow_text=True),
    Step("media", Input.MEDIA, "report.q.media", optional=True),
)  # fmt: skip

DETAIL_STEPS = (
    Step("when", Input.CHOICE, "report.q.when", options="when", optional=True, section=DETAILS),
    Step("when_time", Input.TIME, "report.q.when_time", when=_is("when", "today"),
         optional=True, section=DETAILS),
    Step("when_at", Input.DATETIME, "report.q.when_at", when=_is("when", "other"),
         optional=True, section=DETAILS),
    Step("seen", Input.CHOICE, "report.q.seen", options="seen", optional=True, section=DETAILS),
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
    Step("motorway", Input.CHOICE, "report.q.motorway", options="yes_no", optional=True,
         section=DETAILS),
    _road("road"),
    _road("direction"),
    _road("marker"),
    _road("parking"),
    Step("phone", Input.TEXT, "report.q.phone", optional=True, check=_phone, section=DETAILS,
         when=lambda answers: answers.get("_contact") is not False),
)  # fmt: skip


def _values(context: Context) -> dict[str, Any]:
    return {"emergency": context.settings.bot.emergency_number}


async def _submit(context: Context, answers: Answers) -> None:
    """Store the report with a reference, then queue it for every coordinator."""
    if await _over_limit(context):
        forms.hold(context, FORM, answers)  # nothing typed is lost: the draft waits
        return
    contact = answers.get("_submit") == "contact"
    clean = {key: value for key, value in answers.items() if not key.startswith("_")}
    if not contact:
        clean.pop("phone", None)
    else:
        clean["_contact"] = {"handle": context.event.sender_handle}
    for attachment in attachments_of(clean):
        await repos.remember_media(context.session, attachment.to_json())
    report = await repos.create_report(
        context.session,
        prefix=context.settings.bot.reference_prefix,
        user=context.user,
        category=str(clean["category"]),
        answers=clean,
        contact_allowed=contact,
        now=context.now(),
    )
    await context.audit("report_submitted", report.reference)
    destinations = await context.coordinator_destinations()
    for destination in destinations:
        await context.send_to(
            destination,
            coordinator_view(context, report),
            kind="report",
            subject_user_id=context.user.id,
        )
    emergency = context.settings.bot.emergency_number
    if destinations:
        watched = context.settings.bot.reports_watched_around_the_clock
        lines = [
            context.t("report.thanks", reference=report.reference),
            context.t("report.watched" if watched else "report.not_watched"),
        ]
    else:
        await context.core.tell_admins(
            context.session, "report_unrouted", reference=report.reference
        )
        lines = [context.t("report.stored_only", reference=report.reference)]
    lines.append(context.t("report.not_110", emergency=emergency))
    context.say(
        "\n\n".join(lines),
        title=context.t("report.sent_title"),
        choices=[
            Choice(f"/details {report.reference}",
                   context.t("report.add_details_to", reference=report.reference)),
            Choice("/myreports", context.t("report.my_reports")),
            Choice("/menu", context.t("menu.open")),
        ],
    )  # fmt: skip


FORM = Form(
    name="rep",
    texts="report",
    steps=ESSENTIALS + DETAIL_STEPS,
    on_submit=_submit,
    question_values=_values,
    submit_options="report_send",
    section=DETAILS,
    confirm_cancel=True,
)
forms.register(router, FORM)


def coordinator_choices(context: Context, report: Report) -> list[Choice]:
    """Under a report: the status buttons (without the status it has), and a reply to the
    reporter when they allowed contact."""
    lang = context.settings.bot.default_language
    choices = [
        Choice(f"tri:{report.id}:{status}", label)
        for status, label in context.content.options(lang, "triage")
        if status != report.status
    ]
    if report.contact_allowed and report.user_id is not None:
        choices.append(Choice(f"rrp:{report.id}", context.content.text(lang, "triage.reply")))
    return choices


def attachments_of(answers: Answers) -> list[Attachment]:
    found = [Attachment.from_json(item) for item in answers.get("media") or []]
    for value in answers.values():
        if isinstance(value, dict) and "voice" in value:
            found.append(Attachment.from_json(value["voice"]))
    return found


def contact_line(context: Context, report: Report) -> str:
    """How coordinators reach the reporter — only when the reporter allowed it."""
    lang = context.settings.bot.default_language
    if not report.contact_allowed:
        return context.content.text(lang, "report.anonymous")
    handle = str((report.answers.get("_contact") or {}).get("handle") or "")
    parts = [part for part in (handle, str(report.answers.get("phone") or "")) if part]
    how = " · ".join(parts) or context.content.text(lang, "report.reply_only")
    return context.content.text(lang, "report.contact", how=how)


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
    when = content.format_when(lang, report.created_at, context.tz)
    lines.append(content.text(lang, "report.reporter", transport=report.transport, when=when))
    lines.append(contact_line(context, report))
    reply = Reply(
        text="\n".join(lines),
        title=f"{report.reference} · {category}",
        location=location,
        attachments=attachments_of(answers),
        choices=coordinator_choices(context, report),
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


@router.command("report", "melden", "zglos", takes_text=True, rank=0)
async def report(context: Context) -> None:
    """Start (or resume) the report dialogue; words given with it are the description."""
    if context.flow == FORM.name:
        context.say(context.t("report.resume"))
        await forms.resume(context, FORM)
        return
    if await _over_limit(context):
        return
    words = context.event.args.strip()
    given: Answers = {}
    if words:
        # Free text that describes an observation: kept as the description, its category
        # inferred; "happening now?" is still asked first.
        given = {"description": words, "category": infer_category(context, words)}
    await forms.start(context, FORM, given)


# -- details after sending -------------------------------------------------------------------


async def _add_details(context: Context, answers: Answers) -> None:
    """Details given after sending reach the coordinators as an update to the report."""
    report = await _own_report(context, str(answers.get("_reference", "")))
    if report is None:
        context.say(context.t("report.not_yours"))
        return
    added = {k: v for k, v in answers.items() if not k.startswith("_") and v is not None}
    if not report.contact_allowed:
        added.pop("phone", None)
    if not added:
        context.say(context.t("report.no_details"))
        return
    report.answers = {**report.answers, **added}
    report.updated_at = context.now()
    await context.audit("report_details", report.reference, fields=sorted(added))
    lang = context.settings.bot.default_language
    lines = forms.summary(context.content, lang, context.tz, DETAILS_FORM, added)
    update = Reply(
        "\n".join(lines),
        title=context.content.text(lang, "report.update_title", reference=report.reference),
        choices=coordinator_choices(context, report),
    )
    for destination in await context.coordinator_destinations():
        await context.send_to(destination, [update], kind="report", subject_user_id=context.user.id)
    context.say(
        context.t("report.details_added", reference=report.reference),
        choices=[Choice("/menu", context.t("menu.open"))],
    )


def _reference(context: Context) -> dict[str, Any]:
    answers = context.state.data.get("answers", {})
    return {**_values(context), "reference": answers.get("_reference", "")}


DETAILS_FORM = Form(
    name="repd",
    texts="report",
    steps=DETAIL_STEPS,
    on_submit=_add_details,
    opened=DETAILS,
    heading="report.details_heading",
    question_values=_reference,
    confirm_cancel=True,
    review_title="report.details_review",
    confirm="report.send_details",
)
forms.register(router, DETAILS_FORM)


async def _own_report(context: Context, reference: str) -> Report | None:
    found = await repos.report_by_reference(context.session, reference.strip().upper())
    return found if found is not None and found.user_id == context.user.id else None


@router.command("details", listed=False)
async def details(context: Context) -> None:
    """/details SP-2026-000012: add the description sheet to a report already sent."""
    report = await _own_report(context, context.event.args)
    if report is None:
        context.say(context.t("report.not_yours"))
        return
    await forms.start(
        context,
        DETAILS_FORM,
        {"_reference": report.reference, "_contact": report.contact_allowed},
    )


@router.command("myreports", rank=2)
async def my_reports(context: Context) -> None:
    """The reporter's own reports and their status; details can be added to open ones."""
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
    choices = [
        Choice(f"/details {item.reference}",
               context.t("report.add_details_to", reference=item.reference))
        for item in found[:3]
        if item.status != "closed"
    ]  # fmt: skip
    choices.append(Choice("/menu", context.t("menu.open")))
    context.say("\n".join(lines), title=context.t("report.my_reports"), choices=choices)


async def send_to_reporter(context: Context, report: Report, replies: list[Reply]) -> bool:
    """Queue messages for the person who made `report`, if they allowed contact."""
    reporter = await repos.user_by_id(context.session, report.user_id) if report.user_id else None
    if reporter is None or not report.contact_allowed or not reporter.chat_id:
        return False
    destination = Destination(reporter.transport, reporter.chat_id, reporter.id)
    await context.send_to(destination, replies, kind="notice", subject_user_id=reporter.id)
    return True


# -- the reminder about a report left half done -------------------------------------------


@router.job("report_reminders", Every(seconds=300))
async def remind_reports(runtime: Runtime, now: datetime | None = None) -> int:
    """One notice about a report left half done: continue or discard. The draft is marked
    through the event pipeline (under the person's lock), like every write of a person's
    dialogue state."""
    now = now or utcnow()
    minutes = runtime.settings.scheduler.report_reminder_minutes
    active = [door.name for door in runtime.core.doors() if door.active]
    async with runtime.sessions() as session:
        rows = await repos.stale_drafts(
            session, FORM.name, now - timedelta(minutes=minutes), active
        )
    reminded = 0
    for transport, platform_id, chat_id in rows:
        done: list[bool] = []

        async def remind(context: Context, done: list[bool] = done) -> None:
            state = FormState.load(context.state.data)
            if context.flow != FORM.name or state.reminded:
                return  # sent meanwhile, or reminded before
            state.reminded = True
            context.state.data = state.dump()
            reply = Reply(
                text=context.t("alerts.reminder"),
                choices=[
                    Choice("/report", context.t("alerts.reminder_continue")),
                    Choice(f"{FORM.name}:~discard", context.t("alerts.reminder_discard")),
                ],
            )
            own = Destination(context.event.transport, context.event.chat_id, context.user.id)
            await context.send_to(own, [reply], kind="notice")
            done.append(True)

        await runtime.core.pipeline.system(transport, platform_id, chat_id, remind)
        reminded += len(done)
    return reminded
