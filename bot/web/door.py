"""The web door: what a coordinator does in the console enters the Core as an event.

A console action is the coordinator's own action: the event carries their identity as the
bot knows it (`telegram:9001`, `console:leitstelle`), so the access table, the audit log
(their user id), the outbox and the event's transaction are the chat's own, and the
handlers are the chat's handlers (a status is the chat's triage button, a reply the
chat's reply dialogue, sent whole). It runs in a dialogue of its own (chat "web"), never
the person's private chat, so a report they are typing in the chat is not disturbed. The
form's one-time nonce is the event's id: a form sent twice is handled once. The replies
are what the page shows next ("flash" messages).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from bot.core.app import Core
from bot.core.events import Event, EventKind, Reply
from bot.storage.models import User

DOOR = "web"
CHAT = "web"


def nonce() -> str:
    """A new form's one-time id (a hidden field)."""
    return secrets.token_urlsafe(16)


async def act(
    core: Core,
    user: User,
    form_nonce: str,
    *,
    choice: str = "",
    command: str = "",
    args: str = "",
    fields: Mapping[str, str] | None = None,
) -> list[str]:
    """Handle a console action as the coordinator's event; the texts of the replies."""
    event = Event(
        transport=user.transport,
        chat_id=CHAT,
        user_id=user.platform_id,
        kind=EventKind.CHOICE if choice else EventKind.COMMAND,
        choice=choice,
        command=command,
        args=args,
        door=DOOR,
        platform_event_id=f"{DOOR}:{form_nonce[:64]}" if form_nonce else "",
        fields=dict(fields or {}),
    )
    return [text_of(reply) for reply in await core.handle(event)]


def text_of(reply: Reply) -> str:
    return "\n\n".join(part for part in (reply.lead, reply.title, reply.text) if part)
