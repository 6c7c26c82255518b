"""Coordinator alerts: /broadcast (form, preview, confirm), /broadcast_status, /broadcasts.

Nothing goes out before the coordinator confirms the preview, which shows the alert as
recipients will read it and how many will get it. A broadcast "now" is queued in the
same transaction as the confirmation; a scheduled one is queued by the scheduler job.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice, row_id
from bot.core.forms import Answers, Form, Input, Step
from bot.core.i18n import LANGUAGES
from bot.core.jobs import Every
from bot.core.router import Router
from bot.storage import alerts
from bot.storage.alerts import count_recipients, expire_rows, status_counts
from bot.storage.db import transaction
from bot.storage.models import Broadcast, utcnow
from handlers.alert_fanout import alert_replies, fan_out_page, renderer

if TYPE_CHECKING:
    from bot.runtime import Runtime

router = Router("broadcast")
PREVIEW = "bcp"
# The languages every alert asks for (each optional after the first text). Any other
# language's text is added from the preview; recipients whose language has none get the
# English and German texts with a note in their own language.
ASKED_LANGUAGES = ("de", "en", "pl")


def _other_language(lang: str) -> Step:
    return Step(
        f"text_{lang}",
        Input.TEXT,
        f"alerts.q.text_{lang}",
        optional=True,
        when=lambda answers: answers.get("_lang") != lang,
    )


FORM_STEPS = (
    Step("text", Input.TEXT, "alerts.q.text"),
    *(_other_language(lang) for lang in ASKED_LANGUAGES),
    Step("topic", Input.CHOICE, "alerts.q.topic", options="alert_topics"),
    Step("severity", Input.CHOICE, "alerts.q.severity", options="alert_severity"),
    Step("roles", Input.MULTI, "alerts.q.roles", options="roles"),
    Step("regions", Input.MULTI, "alerts.q.audience_regions", options="regions"),
    Step("transports", Input.MULTI, "alerts.q.transports", options="alert_transports"),
    Step("hours", Input.NUMBER, "alerts.q.hours", minimum=1, maximum=720),
    Step("when", Input.CHOICE, "alerts.q.when", options="alert_when"),
    Step(
        "at",
        Input.DATETIME,
        "alerts.q.at",
        when=lambda answers: answers.get("when") == "later",
        direction="future",
    ),
)


def build(context: Context, answers: Answers) -> Broadcast:
    """The broadcast the answers describe (not yet stored)."""
    lang = str(answers.get("_lang") or context.lang)
    texts = {lang: str(answers["text"])}
    for other in LANGUAGES:
        if answers.get(f"text_{other}"):
            texts[other] = str(answers[f"text_{other}"])
    now = context.now()
    send_at = now
    if answers.get("when") == "later" and answers.get("at"):
        send_at = max(now, datetime.fromisoformat(str(answers["at"])))
    return Broadcast(
        created_by=context.user.id,
        topic=str(answers["topic"]),
        severity=str(answers["severity"]),
        texts=texts,
        language=lang,
        roles=list(answers.get("roles") or []),
        regions=list(answers.get("regions") or []),
        # "All channels" are the transports this deployment runs: nothing is queued for
        # one that does not run.
        transports=list(answers.get("transports") or [])
        or [door.name for door in context.core.doors() if door.active],
        status="scheduled",
        send_at=send_at,
        expires_at=send_at + timedelta(hours=int(answers["hours"])),
        cursor=0,
    )


async def _preview(context: Context, answers: Answers) -> None:
    """Show the alert as recipients read it, the audience and the count; wait for 'send'."""
    context.start_flow(PREVIEW, {"answers": answers})
    broadcast = build(context, answers)
    count = await count_recipients(context.session, broadcast)
    broadcast.id = 0
    lines = forms.summary(context.content, context.lang, context.tz, FORM, answers)
    context.say("\n".join(lines), title=context.t("alerts.review"))
    for lang, _text in broadcast.texts.items():
        for reply in alert_replies(context.content, context.tz, broadcast, lang):
            reply.choices = []
            context.say(reply.text, title=reply.title)
    missing = [code for code in LANGUAGES if code not in broadcast.texts]
    add = [Choice(f"{PREVIEW}:lang", context.t("alerts.add_language"))] if missing else []
    info = f"\n{context.t('alerts.fallback_info')}" if missing else ""
    context.say(
        context.t("alerts.recipients", count=count) + info,
        choices=[
            Choice(f"{PREVIEW}:send", context.t("alerts.confirm")),
            *add,
            Choice(f"{PREVIEW}:cancel", context.t("form.cancel")),
        ],
    )


FORM = Form(name="bc", texts="alerts", review=False, steps=FORM_STEPS, on_submit=_preview)
forms.register(router, FORM)


@router.command("broadcast")
async def broadcast(context: Context) -> None:
    """Start a new alert; the first text is in the coordinator's language (the deployment's
    default when theirs has no coordinator texts: that is what they are asked in)."""
    await forms.start(context, FORM, {"_lang": context.content.coordinator_language(context.lang)})


def _ask_language(context: Context, answers: Answers) -> None:
    """The languages the alert has no text in yet, each named in itself."""
    given = build(context, answers).texts
    context.say(
        context.t("onboarding.language"),
        choices=[
            *(
                Choice(f"{PREVIEW}:lang:{code}", label)
                for code, label in context.content.options(context.lang, "languages")
                if code not in given
            ),
            Choice(f"{PREVIEW}:back", context.t("form.back")),
        ],
    )


async def _add_text(context: Context, answers: Answers) -> bool:
    """The preview's "add a language": which language, then its text. True when handled."""
    choice, adding = context.event.choice, str(context.state.data.get("adding") or "")
    if choice == f"{PREVIEW}:lang":
        _ask_language(context, answers)
        return True
    code = choice.removeprefix(f"{PREVIEW}:lang:")
    if choice.startswith(f"{PREVIEW}:lang:") and code in LANGUAGES:
        context.update_data(adding=code, input="text")  # a number typed is the text
        language = context.content.label(context.lang, "languages", code)
        context.say(
            context.t("alerts.q.text_other", language=language),
            choices=[Choice(f"{PREVIEW}:back", context.t("form.back"))],
        )
        return True
    if adding and not choice and context.event.text:
        context.end_flow()
        await _preview(context, {**answers, f"text_{adding}": context.event.text})
        return True
    return False


@router.flow(PREVIEW)
async def confirm(context: Context) -> None:
    answers = dict(context.state.data.get("answers", {}))
    choice = context.event.choice
    if await _add_text(context, answers):
        return
    if choice == f"{PREVIEW}:cancel":
        context.end_flow()
        context.say(context.t("form.cancelled"), choices=[Choice("/menu", context.t("menu.open"))])
        return
    if choice != f"{PREVIEW}:send":
        context.end_flow()
        await _preview(context, answers)
        return
    context.end_flow()
    item = build(context, answers)
    context.session.add(item)
    await context.session.flush()
    await context.audit("broadcast", f"#{item.id}", topic=item.topic, severity=item.severity)
    if item.send_at > context.now():
        when = context.content.format_when(context.lang, item.send_at, context.tz)
        context.say(context.t("alerts.scheduled", id=item.id, when=when))
        return
    while await fan_out_page(context.session, context.content, context.tz, item) is not None:
        pass
    counts = await status_counts(context.session, item.id)
    context.say(context.t("alerts.queued", id=item.id, count=counts["queued"]))


@router.command("broadcast_status")
async def broadcast_status(context: Context) -> None:
    """/broadcast_status ID — queued, sent, failed and acknowledged."""
    raw = context.event.args.strip().lstrip("#")
    if not raw:
        await scheduled(context)
        return
    broadcast_id = row_id(raw)
    item = await context.session.get(Broadcast, broadcast_id) if broadcast_id else None
    if item is None:
        context.say(context.t("alerts.no_such_alert" if broadcast_id else "alerts.status_usage",
                              id=raw[:16]))  # fmt: skip
        return
    counts = await status_counts(context.session, item.id)
    status = context.content.label(context.lang, "alert_status", item.status)
    context.say(
        context.t("alerts.status", id=item.id, status=status, **counts),
        title=context.t("alerts.status_title"),
    )


@router.command("broadcasts")
async def scheduled(context: Context) -> None:
    """The latest alerts with their state: scheduled ones can be cancelled, the others
    opened for their receipts."""
    found = (
        await context.session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(10))
    ).all()
    if not found:
        context.say(
            context.t("alerts.none_yet"),
            choices=[Choice("/broadcast", context.t("alerts.new")),
                     Choice("/menu", context.t("menu.open"))],
        )  # fmt: skip
        return
    lines, choices = [], []
    for item in found:
        when = context.content.format_when(context.lang, item.send_at, context.tz)
        topic = context.content.label(context.lang, "alert_topics", item.topic)
        status = context.content.label(context.lang, "alert_status", item.status)
        text = item.texts.get(context.lang) or item.texts[item.language]
        lines.append(f"#{item.id} · {when} · {status} · {topic}: {text[:60]}")
        if item.status == "scheduled":
            choices.append(Choice(f"bcx:{item.id}", context.t("alerts.cancel_one", id=item.id)))
        else:
            label = context.t("alerts.status_one", id=item.id)
            choices.append(Choice(f"/broadcast_status {item.id}", label))
    choices.append(Choice("/menu", context.t("menu.open")))
    context.say("\n".join(lines), title=context.t("alerts.list_title"), choices=choices)


@router.choice("bcx")
async def cancel(context: Context) -> None:
    """Cancel a scheduled alert (coordinators only: see the access table)."""
    broadcast_id = row_id(context.event.choice.removeprefix("bcx:"))
    item = await context.session.get(Broadcast, broadcast_id) if broadcast_id else None
    if item is None or item.status not in ("scheduled", "sending"):
        context.say(context.t("alerts.cannot_cancel"))
        return
    item.status = "cancelled"
    await expire_rows(context.session, item.id)
    await context.audit("broadcast_cancelled", f"#{item.id}")
    context.say(context.t("alerts.cancelled", id=item.id))


# -- scheduled: alerts whose time has come, urgent ones once more ---------------------------


@router.job("fan_out_broadcast")
async def fan_out_broadcast(runtime: Runtime, broadcast_id: int) -> None:
    """Queue one alert for all its recipients (scheduled for its time, or picked up)."""
    render = renderer(runtime.content, ZoneInfo(runtime.settings.bot.timezone))
    await alerts.fan_out(runtime.sessions, render, broadcast_id)


@router.job("broadcasts_due", Every(seconds=30))
async def fan_out_due(runtime: Runtime, now: datetime | None = None) -> None:
    """Fan out the alerts whose time has come; alerts that expired first (the bot was down)
    are marked expired with whatever of them waits, and never sent late."""
    now = now or utcnow()
    async with transaction(runtime.sessions) as session:
        await alerts.expire_broadcasts(session, now)
    async with runtime.sessions() as session:
        due = await alerts.due_broadcasts(session, now)
    for broadcast_id in due:
        await fan_out_broadcast(runtime, broadcast_id)


@router.job("urgent_resend", Every(seconds=60))
async def urgent_resend(runtime: Runtime) -> None:
    """Urgent alerts once more to those who have not pressed 'Understood'."""
    render = renderer(runtime.content, ZoneInfo(runtime.settings.bot.timezone))
    minutes = runtime.settings.scheduler.urgent_resend_minutes
    await alerts.resend_urgent(runtime.sessions, render, minutes)
