"""Doors: what the Core knows of each way in (a chat platform, the terminal, later the web
console), read from the settings — never a client. The Core asks its doors who the
coordinators and admins are and where reports go; it never names a transport.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Door:
    """One transport as the deployment configures it."""

    name: str
    # Part of this deployment: messages for it are queued (a transport that does not run
    # would leave them waiting forever).
    active: bool
    # Platform ids named in the config.
    coordinators: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    # The coordinators' shared chat (a group, a room) that receives reports, or "".
    group: str = ""
    # Whether a platform id is well formed (Telegram ids are numbers, Matrix ids @a:b).
    valid_id: Callable[[str], bool] = lambda platform_id: bool(platform_id)
    id_example: str = ""
    # The config key of the coordinator list and of the group, for messages to operators.
    coordinators_key: str = ""
    group_key: str = ""


def reach_problem(doors: Iterable[Door]) -> str | None:
    """Why reports would reach no one, or None when some coordinator will read them."""
    active = [door for door in doors if door.active]
    if not active:
        return "no transport is enabled: enable telegram or matrix, or the terminal (console)"
    if any(door.group or door.coordinators for door in active):
        return None
    keys = ", ".join(
        key for door in active for key in (door.coordinators_key, door.group_key) if key
    )
    return f"reports would reach no one: name a coordinator or a coordinator chat ({keys})"
