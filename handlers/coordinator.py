"""Coordinator triage of reports: acknowledged, passed to police, closed (with a note)."""

from __future__ import annotations

from bot.core import forms
from bot.core.context import Context, Destination
from bot.core.events import Choice, Reply, row_id
from bot.core.forms import Answers, Form, Input, Step
from bot.core.router import Router
from bot.storage import repos
from bot.storage.models import Report

router = Router("coordinator")
STATUSES = ("ack", "police", "closed")


async def _close_with_note(context: Context, answers: Answers) -> None:
    report = await context.session.get(Report, int(answers["_report"]))
    if report is None:
        context.say(context.t("triage.not_found"))
        return
    await set_status(context, report, "closed", str(answers.get("note") or ""))


NOTE_FORM = Form(
    name="trn",
    texts="triage",
    review=False,
    steps=(Step("note", Input.TEXT, "triage.q.note", optional=True),),
    on_submit=_close_with_note,
)
forms.register(router, NOTE_FORM)


def triage_choices(context: Context, report: Report) -> list[Choice]:
    """The status buttons under a report, without the status it already has."""
    lang = context.settings.bot.default_language
    return [
        Choice(f"tri:{report.id}:{status}", label)
        for status, label in context.content.options(lang, "triage")
        if status != report.status
    ]


@router.choice("tri")
async def triage(context: Context) -> None:
    """A coordinator pressed a status button under a report."""
    _, raw, status = [*context.event.choice.split(":"), "", ""][:3]
    report_id = row_id(raw)
    report = await context.session.get(Report, report_id) if report_id else None
    if report is None or status not in STATUSES:
        context.say(context.t("triage.not_found"))
        return
    await _apply(context, report, status)


async def _apply(context: Context, report: Report, status: str) -> None:
    """Closing asks for an optional note first; the other statuses apply at once."""
    if status == "closed":
        await forms.start(context, NOTE_FORM, {"_report": report.id})
    else:
        await set_status(context, report, status, "")


async def set_status(context: Context, report: Report, status: str, note: str) -> None:
    """Change a report's status, audit it, and tell a reporter who agreed to contact."""
    previous = report.status
    report.status = status
    report.status_note = note
    report.updated_at = context.now()
    if status == "closed":
        report.closed_at = context.now()
    await context.audit("report_status", report.reference, previous=previous, status=status)
    label = context.content.label(context.lang, "status", status)
    # The buttons stay under the answer, so the next status is one tap away too.
    choices = [] if status == "closed" else triage_choices(context, report)
    context.say(
        context.t("triage.changed", reference=report.reference, status=label), choices=choices
    )
    reporter = await repos.user_by_id(context.session, report.user_id) if report.user_id else None
    if reporter is None or not report.contact_allowed or not reporter.chat_id:
        return
    text = context.content.text(
        reporter.language,
        "triage.reporter_notice",
        reference=report.reference,
        status=context.content.label(reporter.language, "status", status),
    )
    destination = Destination(reporter.transport, reporter.chat_id, reporter.id)
    await context.send_to(destination, [Reply(text)], kind="notice", subject_user_id=reporter.id)


@router.command("triage", listed=False)
async def triage_by_reference(context: Context) -> None:
    """/triage SP-2026-000001 police — the same by typing, for the terminal and Matrix."""
    reference, _, status = context.event.args.upper().partition(" ")
    report = await repos.report_by_reference(context.session, reference.strip())
    status = status.strip().lower()
    if report is None or status not in STATUSES:
        context.say(context.t("triage.usage"))
        return
    await _apply(context, report, status)
