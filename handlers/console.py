"""/console: a coordinator's one-time login link to the web console (bot/web/).

The link is valid for `LOGIN_MINUTES` and opens one session; `sicherheitsbot console-link`
prints the same for an operator. Only in a direct chat: a link in a group would let
everyone there in.
"""

from __future__ import annotations

from bot.core.context import Context
from bot.core.router import Router
from bot.storage import console

router = Router("console")


@router.command("console")
async def console_link(context: Context) -> None:
    """A one-time link into the console, for the coordinator who asked."""
    if context.event.is_group or context.event.door:
        context.say(context.t("console_chat.direct_only"))
        return
    if not context.settings.web.console_served:
        context.say(context.t("console_chat.disabled"))
        return
    token = await console.create_login(
        context.session, context.user.id, context.now(), console.LOGIN_MINUTES
    )
    await context.audit("console_link", "")
    reply = context.say(
        context.t(
            "console_chat.link",
            url=context.settings.web.login_link(token),
            minutes=console.LOGIN_MINUTES,
        ),
        title=context.t("console_chat.title"),
    )
    reply.secret = True  # the conversation log keeps no usable link
