"""Direct chats the bot opens itself, for messages addressed to a Matrix user id.

A report for a coordinator named in the config (`@name:server`) goes into the one direct
room with that person: the room remembered in the users table, else a room the two of
them share alone, else a new one the bot creates and invites them to (encrypted when
encryption is on). The room is remembered, so later messages go there too. Messages sent
before the person accepts the invite are readable once they join: the room's history is
shared with members, and encryption keys go to an invited person's devices as well.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import aiohttp
import nio

from bot.config import MatrixSettings
from bot.core.app import Core
from bot.delivery.outbox import TransientFailure
from bot.storage import repos
from bot.storage.db import transaction
from bot.transports.matrix_outbound import TRANSPORT, failure

log = logging.getLogger(__name__)
MEGOLM = "m.megolm.v1.aes-sha2"
# How long a room the bot just created may take to come through its own sync.
SYNC_WAIT_S = 10.0


class DirectRooms:
    """Finds or opens the direct room with a person; one at a time per person."""

    def __init__(self, core: Core, settings: MatrixSettings) -> None:
        self.core = core
        self.settings = settings
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Rooms opened by this process, per person: not in the sync yet is no reason to
        # open another one.
        self._opened: dict[str, str] = {}

    async def room_for(self, client: Any, user_id: str) -> str:
        """The id of the direct room with `user_id`, created and remembered if need be."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        async with lock:
            async with transaction(self.core.sessions) as session:
                remembered = await repos.private_chat(session, TRANSPORT, user_id)
            if remembered and (
                self._alone_with(client, remembered, user_id)
                or (self._opened.get(user_id) == remembered and remembered not in client.rooms)
            ):
                return remembered
            room_id = self._shared_alone(client, user_id) or await self._create(client, user_id)
            if room_id != remembered:
                async with transaction(self.core.sessions) as session:
                    await repos.remember_private_chat(
                        session,
                        TRANSPORT,
                        user_id,
                        room_id,
                        self.core.settings.bot.default_language,
                    )
            return room_id

    def _alone_with(self, client: Any, room_id: str, user_id: str) -> bool:
        """Whether the bot and `user_id` (joined or invited) are the room's only members,
        in a room the bot can post in (not an encrypted one without encryption)."""
        room = client.rooms.get(room_id)
        return (
            room is not None
            and room_id != self.settings.coordinator_room
            and set(room.users) == {client.user_id, user_id}
            and (not room.encrypted or client.olm is not None)
        )

    def _shared_alone(self, client: Any, user_id: str) -> str:
        """A room the bot shares with only `user_id`; one they joined comes first."""
        found = [
            room
            for room_id, room in list(client.rooms.items())
            if self._alone_with(client, room_id, user_id)
        ]
        found.sort(key=lambda room: (user_id in room.invited_users, not room.encrypted))
        return str(found[0].room_id) if found else ""

    async def _create(self, client: Any, user_id: str) -> str:
        encrypted = self.settings.encryption and client.olm is not None
        state = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]
        try:
            response = await client.room_create(
                is_direct=True,
                invite=[user_id],
                preset=nio.RoomPreset.trusted_private_chat,
                initial_state=state if encrypted else [],
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientFailure(repr(exc)[:200]) from exc
        if not isinstance(response, nio.RoomCreateResponse):
            raise failure(response)
        room_id = self._opened[user_id] = str(response.room_id)
        log.info("matrix: opened direct room %s to deliver a message", room_id)
        # Send only once the sync shows the room with its invite: encryption needs the
        # members, and the Core needs to know who reads the room.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYNC_WAIT_S
        while not self._alone_with(client, room_id, user_id):
            if loop.time() > deadline:
                break  # remembered all the same: the next attempt finds it synced
            await asyncio.sleep(0.05)
        return room_id
