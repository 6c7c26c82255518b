"""The registry of transports, as doors for the Core (see bot/core/doors.py).

Read from the settings each time they are asked for, so a changed setting (a coordinator
removed from the config) takes effect at once. Nothing here imports a platform library.
"""

from __future__ import annotations

import re

from bot.config import Settings
from bot.core.doors import Door

TELEGRAM_ID = re.compile(r"-?[0-9]{1,20}")
MATRIX_ID = re.compile(r"@[^:\s]{1,200}:[^\s]{1,200}")
CONSOLE_NAME_LIMIT = 64


def console_active(settings: Settings) -> bool:
    """The terminal is a transport of the deployment when configured so; unset, when no
    chat platform is enabled (the quick start)."""
    if settings.console.enabled is not None:
        return settings.console.enabled
    return not (settings.telegram.enabled or settings.matrix.enabled)


def doors(settings: Settings) -> list[Door]:
    chats = _chat_doors(settings)
    known = {door.name: door for door in chats}

    def identity(value: str) -> bool:
        transport, _, platform_id = value.partition(":")
        door = known.get(transport)
        return door is not None and door.valid_id(platform_id)

    # The coordinator console (bot/web/): its events act as a coordinator's own chat
    # identity, "TRANSPORT:ID"; nothing is queued for it (it reads from the database).
    web = Door("web", False, valid_id=identity, id_example="telegram:123456789")
    return [*chats, web]


def _chat_doors(settings: Settings) -> list[Door]:
    telegram, matrix, console = settings.telegram, settings.matrix, settings.console
    return [
        Door(
            "console",
            console_active(settings),
            tuple(console.coordinators),
            tuple(console.admins),
            valid_id=lambda name: 0 < len(name) <= CONSOLE_NAME_LIMIT and name.isprintable(),
            id_example="leitstelle",
            coordinators_key="console.coordinators",
        ),
        Door(
            "telegram",
            telegram.enabled,
            tuple(str(item) for item in telegram.coordinators),
            tuple(str(item) for item in telegram.admins),
            "" if telegram.coordinator_chat_id is None else str(telegram.coordinator_chat_id),
            valid_id=lambda platform_id: TELEGRAM_ID.fullmatch(platform_id) is not None,
            id_example="123456789",
            coordinators_key="telegram.coordinators",
            group_key="telegram.coordinator_chat_id",
        ),
        Door(
            "matrix",
            matrix.enabled,
            tuple(matrix.coordinators),
            tuple(matrix.admins),
            matrix.coordinator_room,
            valid_id=lambda platform_id: MATRIX_ID.fullmatch(platform_id) is not None,
            id_example="@name:example.org",
            coordinators_key="matrix.coordinators",
            group_key="matrix.coordinator_room",
        ),
    ]
