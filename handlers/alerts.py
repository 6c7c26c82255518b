"""/alerts: which alerts a person receives (topics, regions, or none), and 'Understood'."""

from __future__ import annotations

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice, row_id
from bot.core.forms import Answers, Form, Input, Step
from bot.core.router import Router
from bot.storage.alerts import acknowledge, effective, was_queued_for
from bot.storage.models import AlertSubscription, Broadcast

router = Router("alerts")


async def _subscription(context: Context) -> AlertSubscription | None:
    return await context.session.get(AlertSubscription, context.user.id)


async def _save(context: Context, answers: Answers) -> None:
    subscription = await _subscription(context)
    muted, topics, regions = effective(context.user, subscription)
    if subscription is None:
        subscription = AlertSubscription(user_id=context.user.id, muted=muted)
        context.session.add(subscription)
    subscription.topics = list(answers.get("topics", topics))
    subscription.regions = list(answers.get("regions", regions))
    subscription.muted = not subscription.topics or not subscription.regions
    await context.audit("alerts_subscription", "", muted=subscription.muted)
    context.say(context.t("alerts.saved"))
    await show(context)


FORM = Form(
    name="alf",
    texts="alerts",
    review=False,
    steps=(
        Step("topics", Input.MULTI, "alerts.q.topics", options="alert_topics"),
        Step("regions", Input.MULTI, "alerts.q.regions", options="regions"),
    ),
    on_submit=_save,
)
forms.register(router, FORM)


def _labels(context: Context, key: str, ids: list[str]) -> str:
    return ", ".join(context.content.label(context.lang, key, i) for i in ids) or "—"


@router.command("alerts")
async def show(context: Context) -> None:
    """The current choice and how to change it."""
    muted, topics, regions = effective(context.user, await _subscription(context))
    if muted:
        text = context.t("alerts.current_off")
        toggle = Choice("alt:on", context.t("alerts.turn_on"))
    else:
        text = context.t(
            "alerts.current",
            topics=_labels(context, "alert_topics", topics),
            regions=_labels(context, "regions", regions),
        )
        toggle = Choice("alt:off", context.t("alerts.turn_off"))
    context.say(
        text,
        title=context.t("alerts.title"),
        choices=[
            Choice("alt:topics", context.t("alerts.change_topics")),
            Choice("alt:regions", context.t("alerts.change_regions")),
            toggle,
            Choice("/menu", context.t("menu.open")),
        ],
    )


@router.choice("alt")
async def change(context: Context) -> None:
    """Edit topics or regions (the current ones pre-ticked), or switch alerts off and on."""
    action = context.event.choice.removeprefix("alt:")
    subscription = await _subscription(context)
    _muted, topics, regions = effective(context.user, subscription)
    if action in ("off", "on"):
        if subscription is None:
            subscription = AlertSubscription(
                user_id=context.user.id, topics=topics, regions=regions
            )
            context.session.add(subscription)
        subscription.muted = action == "off"
        if action == "on" and not (subscription.topics and subscription.regions):
            _, subscription.topics, subscription.regions = effective(context.user, None)
        await context.audit("alerts_subscription", "", muted=subscription.muted)
        context.say(context.t("alerts.off" if action == "off" else "alerts.on"))
        await show(context)
        return
    if action not in ("topics", "regions"):
        context.say(context.t("core.stale_choice"))
        await show(context)
        return
    kept = {"regions": regions} if action == "topics" else {"topics": topics}
    context.start_flow(
        FORM.name,
        {
            "answers": kept,
            "trail": [],
            "mode": "ask",
            "step": "",
            "multi": topics if action == "topics" else regions,
        },
    )
    await forms.resume(context, FORM)


@router.choice("ack")
async def understood(context: Context) -> None:
    """'✅ Understood' under an alert: recorded once per person and alert."""
    broadcast_id = row_id(context.event.choice.removeprefix("ack:"))
    broadcast = await context.session.get(Broadcast, broadcast_id) if broadcast_id else None
    # Only someone the alert was sent to can confirm it: receipts stay true.
    sent = broadcast is not None and await was_queued_for(
        context.session, broadcast.id, context.user.id
    )
    if broadcast is None or not sent:
        context.say(context.t("core.stale_choice"))
        return
    await acknowledge(context.session, broadcast.id, context.user.id)
    context.say(context.t("alerts.acknowledged"), choices=[Choice("/menu", context.t("menu.open"))])
