"""/settings: change language, role or region at any time."""

from __future__ import annotations

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice
from bot.core.forms import Answers, Form, Input, Step
from bot.core.router import Router

router = Router("settings")
FIELDS = ("language", "role", "region")


async def _save(context: Context, answers: Answers) -> None:
    context.user.language = context.content.language(answers["language"])
    context.user.role = answers["role"]
    context.user.region = answers["region"]
    context.say(context.t("settings.saved"), choices=[Choice("/menu", context.t("menu.open"))])


FORM = Form(
    name="setf",
    texts="settings",
    review=False,
    steps=(
        Step("language", Input.CHOICE, "onboarding.language", options="languages"),
        Step("role", Input.CHOICE, "onboarding.role", options="roles"),
        Step("region", Input.CHOICE, "onboarding.region", options="regions"),
    ),
    on_submit=_save,
)
forms.register(router, FORM)


@router.command("settings")
async def settings(context: Context) -> None:
    """Show the current profile and what can be changed."""
    user = context.user
    context.say(
        context.t(
            "settings.current",
            language=context.content.label(context.lang, "languages", user.language),
            role=context.content.label(context.lang, "roles", user.role or ""),
            region=context.content.label(context.lang, "regions", user.region or ""),
        ),
        title=context.t("settings.title"),
        choices=[
            *context.options("settings", "set:"),
            Choice("/menu", context.t("menu.back_to_menu")),
        ],
    )


@router.choice("set")
async def change(context: Context) -> None:
    """Ask only the field that was picked; the others keep their values."""
    field = context.event.choice.removeprefix("set:")
    if field == "weekly_tip":
        context.user.weekly_tip = not context.user.weekly_tip
        state = context.t(
            "settings.weekly_on" if context.user.weekly_tip else "settings.weekly_off"
        )
        context.say(context.t("settings.weekly_tip", state=state))
        await settings(context)
        return
    if field not in FIELDS:
        if context.core.commands.get(field) is not None:
            await context.run_command(field)
            return
        context.say(context.t("core.stale_choice"))
        await settings(context)
        return
    user = context.user
    current = {"language": user.language, "role": user.role, "region": user.region}
    await forms.start(context, FORM, {k: v for k, v in current.items() if k != field})
