"""The coordinators' desk in the chat: open reports, triage (seen, passed to police,
closed with a note), and answers to reporters who allowed contact.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice, Reply, row_id
from bot.core.forms import Answers, Form, Input, Step
from bot.core.router import Router
from bot.storage import repos
from bot.storage.models import Report
from handlers.report import coordinator_choices, coordinator_view, send_to_reporter

router = Router("coordinator")
STATUSES = ("ack", "police", "closed")
OPEN_LISTED = 10


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


async def _send_reply(context: Context, answers: Answers) -> None:
    report = await context.session.get(Report, int(answers["_report"]))
    if report is None:
        context.say(context.t("triage.not_found"))
        return
    await reply_to_reporter(context, report, str(answers["text"]))


REPLY_FORM = Form(
    name="rrpf",
    texts="triage",
    review=False,
    steps=(Step("text", Input.TEXT, "triage.q.reply"),),
    on_submit=_send_reply,
)
forms.register(router, REPLY_FORM)


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
    choices = [] if status == "closed" else coordinator_choices(context, report)
    context.say(
        context.t("triage.changed", reference=report.reference, status=label), choices=choices
    )
    reporter = await repos.user_by_id(context.session, report.user_id) if report.user_id else None
    language = reporter.language if reporter is not None else context.lang
    text = context.content.text(
        language,
        "triage.reporter_notice",
        reference=report.reference,
        status=context.content.label(language, "status", status),
    )
    await send_to_reporter(context, report, [Reply(text)])


async def reply_to_reporter(context: Context, report: Report, text: str) -> None:
    """A coordinator's message to the reporter, through the bot; audited, never shown to
    anyone else."""
    reporter = await repos.user_by_id(context.session, report.user_id) if report.user_id else None
    language = reporter.language if reporter is not None else context.lang
    message = Reply(
        text,
        title=context.content.text(language, "triage.message_title", reference=report.reference),
        choices=[
            Choice(
                f"/details {report.reference}",
                context.content.text(language, "report.add_details_to", reference=report.reference),
            )
        ],
    )
    if not await send_to_reporter(context, report, [message]):
        context.say(context.t("triage.no_contact", reference=report.reference))
        return
    await context.audit("report_reply", report.reference)
    context.say(context.t("triage.replied", reference=report.reference))


@router.choice("rrp")
async def reply_pressed(context: Context) -> None:
    """'Reply to the reporter' under a report: asks for the text."""
    report_id = row_id(context.event.choice.removeprefix("rrp:"))
    report = await context.session.get(Report, report_id) if report_id else None
    if report is None:
        context.say(context.t("triage.not_found"))
        return
    if not report.contact_allowed or report.user_id is None:
        context.say(context.t("triage.no_contact", reference=report.reference))
        return
    await forms.start(context, REPLY_FORM, {"_report": report.id})


@router.command("reply", listed=False)
async def reply_by_reference(context: Context) -> None:
    """/reply SP-2026-000001 text — a message to the reporter."""
    reference, _, text = context.event.args.strip().partition(" ")
    if not reference or not text.strip():
        context.say(context.t("triage.reply_usage"))
        return
    report = await repos.report_by_reference(context.session, reference.upper())
    if report is None:
        context.say(context.t("triage.unknown_reference", reference=reference[:32]))
        return
    await reply_to_reporter(context, report, text.strip())


@router.command("triage", listed=False)
async def triage_by_reference(context: Context) -> None:
    """/triage SP-2026-000001 police — the same by typing, for the terminal and Matrix."""
    reference, _, status = context.event.args.strip().partition(" ")
    status = status.strip().lower()
    if not reference or status not in STATUSES:
        context.say(context.t("triage.usage"))
        return
    report = await repos.report_by_reference(context.session, reference.upper())
    if report is None:
        context.say(context.t("triage.unknown_reference", reference=reference[:32]))
        return
    await _apply(context, report, status)


@router.command("reports")
async def open_reports(context: Context) -> None:
    """The reports not closed yet, newest first; each opens with its buttons."""
    found = (
        await context.session.scalars(
            select(Report)
            .where(Report.status != "closed")
            .order_by(Report.id.desc())
            .limit(OPEN_LISTED)
        )
    ).all()
    if not found:
        context.say(
            context.t("triage.none_open"), choices=[Choice("/menu", context.t("menu.open"))]
        )
        return
    if len(found) == 1:
        context.replies.extend(coordinator_view(context, found[0]))
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
    context.say(
        "\n".join(lines),
        title=context.t("triage.open_title"),
        choices=[Choice(f"rpt:{item.id}", item.reference) for item in found],
    )


@router.choice("rpt")
async def show_report(context: Context) -> None:
    """One report, as the coordinators received it, with its buttons."""
    report_id = row_id(context.event.choice.removeprefix("rpt:"))
    report = await context.session.get(Report, report_id) if report_id else None
    if report is None:
        context.say(context.t("triage.not_found"))
        return
    context.replies.extend(coordinator_view(context, report))
