"""/coordinators: admins add and remove coordinators; every change is audited."""

from __future__ import annotations

from sqlalchemy import select

from bot.core.context import Context
from bot.core.router import Router
from bot.storage import repos
from bot.storage.models import User

router = Router("admin")


@router.command("coordinators")
async def coordinators(context: Context) -> None:
    """List coordinators; admins: `add|remove TRANSPORT ID`."""
    action, _, rest = context.event.args.partition(" ")
    transport, _, platform_id = rest.strip().partition(" ")
    platform_id = platform_id.strip()
    if not action or action == "list":
        await _list(context)
        return
    # Only admins get here for add and remove: see the access table (handlers/access.py).
    door = context.core.door(transport)
    if action not in ("add", "remove") or door is None or not platform_id:
        context.say(context.t("admin.usage"))
        return
    if not door.valid_id(platform_id):
        context.say(
            context.t(
                "admin.bad_id", id=platform_id[:64], transport=door.name, example=door.id_example
            )
        )
        return
    if action == "remove" and context.core.is_configured_coordinator(transport, platform_id):
        context.say(context.t("admin.in_config", who=f"{transport}:{platform_id}"))
        return
    user = await repos.get_or_create_user(
        context.session, transport, platform_id, "", context.settings.bot.default_language
    )
    user.coordinator = action == "add"
    done = {"add": "added", "remove": "removed"}[action]
    await context.audit(f"coordinator_{done}", f"{transport}:{platform_id}")
    context.say(context.t(f"admin.{done}", who=f"{transport}:{platform_id}"))


async def _list(context: Context) -> None:
    rows = (
        await context.session.scalars(
            select(User).where(User.coordinator.is_(True)).order_by(User.transport, User.id)
        )
    ).all()
    named = {f"{user.transport}:{user.platform_id}" for user in rows}
    named |= {f"{door.name}:{who}" for door in context.core.doors() for who in door.coordinators}
    context.say("\n".join(sorted(named)) or "—", title=context.t("admin.title"))
