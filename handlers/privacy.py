"""/mydata (a JSON export of everything stored about a person) and /delete_me."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.core.context import Context
from bot.core.events import AttachmentKind, Choice
from bot.core.router import Router
from bot.storage import privacy, repos

router = Router("privacy")


@router.command("mydata")
async def my_data(context: Context) -> None:
    """Send the person their data as a JSON file."""
    export = await privacy.export_user(context.session, context.user)
    data = json.dumps(export, ensure_ascii=False, indent=2, default=str).encode()
    attachment = await context.media.save(
        data, AttachmentKind.DOCUMENT, "mydata.json", "application/json"
    )
    # A complete copy of the person on disk: held for minutes (to be delivered), then the
    # export purge deletes it; erasing the person deletes it at once.
    minutes = context.settings.retention.export_minutes
    until = context.now() + timedelta(minutes=minutes)
    await privacy.keep_export(context.session, context.user.id, attachment.sha256, until)
    await context.audit("data_exported")
    reply = context.say(
        context.t(
            "privacy.export",
            reports=len(export["reports"]),
            messages=len(export["conversation"]),
        )
    )
    reply.attachments.append(attachment)


@router.command("delete_me", "deleteme")
async def delete_me(context: Context) -> None:
    """Ask before erasing."""
    mode = context.settings.retention.on_erasure
    context.say(
        context.t("privacy.confirm_delete", reports=context.t(f"privacy.reports_{mode}")),
        choices=[
            Choice("priv:erase", context.t("privacy.yes_delete")),
            Choice("/menu", context.t("privacy.keep")),
        ],
    )


@router.choice("priv")
async def erase(context: Context) -> None:
    """Erase profile, log, subscriptions and deliveries; reports per the config."""
    if context.event.choice != "priv:erase":
        context.say(context.t("core.stale_choice"))
        return
    mode = context.settings.retention.on_erasure
    counts: dict[str, Any] = await privacy.erase_user(context.session, context.user, mode)
    for sha256 in counts.pop("media", []):
        context.media.delete(sha256)
    # The audit entry keeps counts only: no id that leads back to the person.
    await repos.audit(context.session, None, "user_erased", "", {"mode": mode, **counts})
    context.replies.clear()
    context.say(context.t("privacy.deleted"))
    context.erased = True
