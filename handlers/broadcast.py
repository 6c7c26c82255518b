"""Coordinator alerts: /broadcast (form, preview, confirm), /broadcast_status, /broadcasts.

Nothing goes out before the coordinator confirms the preview, which shows the alert as
recipients will read it and how many will get it. A broadcast "now" is queued in the
same transaction as the confirmation; a scheduled one is queued by the scheduler job.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice, row_id
from bot.core.forms import Answers, Form, Input, Step
from bot.core.i18n import LANGUAGES
from bot.core.router import Router
from bot.storage.models import Broadcast
from handlers.alert_fanout import (
    alert_replies,
    count_recipients,
    expire_rows,
    fan_out_page,
    status_counts,
)

router = Router("broadcast")
PREVIEW = "bcp"


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
    *(_other_language(lang) for lang in LANGUAGES),
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
    context.say(
        context.t("alerts.recipients", count=count),
        choices=[
            Choice(f"{PREVIEW}:send", context.t("alerts.confirm")),
            Choice(f"{PREVIEW}:cancel", context.t("form.cancel")),
        ],
    )


FORM = Form(name="bc", texts="alerts", review=False, steps=FORM_STEPS, on_submit=_preview)
forms.register(router, FORM)


@router.command("broadcast")
async def broadcast(context: Context) -> None:
    """Start a new alert; the first text is in the coordinator's language."""
    await forms.start(context, FORM, {"_lang": context.lang})


@router.flow(PREVIEW)
async def confirm(context: Context) -> None:
    answers = dict(context.state.data.get("answers", {}))
    choice = context.event.choice
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
