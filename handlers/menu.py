"""The menu, help, cancel, and the answer to anything no other handler took."""

from __future__ import annotations

from bot.core.context import Context
from bot.core.events import Choice
from bot.core.router import Router

router = Router("menu")


def menu_choices(context: Context) -> list[Choice]:
    """The entries of the person's menu (by role; a coordinator's desk work first) whose
    commands this deployment has and this person may use."""
    core = context.core
    role = "coordinator" if context.is_coordinator else (context.user.role or "default")
    labels = dict(context.content.options(context.lang, "menu"))
    choices = []
    for command in context.content.menu(role):
        if command == "console" and not context.settings.web.console_served:
            continue  # its answer would only say that there is none
        spec = core.commands.get(command)
        if spec is not None and command in labels and core.allowed(spec, context):
            choices.append(Choice(f"/{command}", labels[command]))
    return choices


@router.command("menu", intent_words=3)
async def menu(context: Context) -> None:
    """Show what the bot can do, as buttons."""
    context.say(
        context.t("menu.text", emergency=context.settings.bot.emergency_number),
        title=context.t("menu.title"),
        choices=menu_choices(context),
    )


@router.command("help", intent_words=3)
async def show_help(context: Context) -> None:
    """Explain the commands."""
    text = context.t("help.text", emergency=context.settings.bot.emergency_number)
    if context.is_coordinator:
        text += "\n\n" + context.t("help.coordinator")
    context.say(text, choices=menu_choices(context))


@router.command("cancel", "stop")
async def cancel(context: Context) -> None:
    """Leave whatever dialogue is open."""
    had_flow = bool(context.flow)
    context.end_flow()
    context.say(
        context.t("menu.cancelled" if had_flow else "menu.nothing_to_cancel"),
        choices=menu_choices(context),
    )


@router.on_fallback
async def fallback(context: Context) -> None:
    """Never silence: offer the menu."""
    await menu(context)
