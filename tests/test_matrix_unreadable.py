"""Trap 10: a person's encrypted message the bot cannot decrypt (their client had not seen
the bot's device, and it does not answer the bot's key request). Instead of silence, the
person is told once that the message could not be read; if the key comes later, the
message is still answered. A real Synapse; the person is an encrypting nio client whose
room key is withheld from the bot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.runtime import Runtime
from bot.transports.matrix_state import STATE_FILE, SyncState
from tests.test_matrix import (
    CONSENT,
    Bot,
    hand_over,
    has,
    launch,
    open_dm,
    say,
    send_without_key,
)

if TYPE_CHECKING:
    from tests.peers.synapse import SynapseServer
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory


async def considered(bot: Bot, event_id: str) -> None:
    """Wait until the bot has kept the event past its notice time and acted on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not any(
        item["source"]["event_id"] == event_id and item.get("checked")
        for item in bot.transport.state.undecrypted
    ):
        assert loop.time() < deadline, f"{event_id} was never considered unreadable"
        await asyncio.sleep(0.05)
    await bot.transport.drain()


async def test_an_unreadable_message_is_told_once_and_still_answered_when_its_key_comes(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    runtime.settings.matrix.unreadable_notice_seconds = 0.5
    store = tmp_path / "bot-store"
    bot = await launch(
        runtime, synapse, matrix_user_factory, matrix_client_factory, store, coordinator_room=False
    )
    try:
        human, room = await open_dm(
            synapse, bot, matrix_user_factory, matrix_client_factory, encrypted=True
        )
        unreadable = has("nicht entschlüsseln")

        # Someone the bot does not know yet: told in the deployment's language.
        _, shares = await send_without_key(human, room, "!start")
        assert shares
        told = await synapse.wait_for_message(human, room, unreadable)
        assert told.decrypted
        assert told.body == runtime.content.text("de", "core.unreadable", emergency="110")
        assert SyncState.load(store / STATE_FILE).was_told(room, human.user_id)

        # Again unreadable, after a restart: not told a second time.
        await bot.restart()
        second, more = await send_without_key(human, room, "!help")
        assert not more  # the same withheld session
        await considered(bot, second)
        with pytest.raises(TimeoutError):
            await synapse.wait_for_message(human, room, unreadable, timeout=1)

        # The key comes after all: both messages are answered, in order.
        await hand_over(human, room, shares)
        await synapse.wait_for_message(human, room, has(CONSENT))  # !start
        await synapse.wait_for_message(human, room, has("So funktioniert"))  # !help
        assert not bot.transport.state.undecrypted
        assert not bot.transport.state.was_told(room, human.user_id)

        # Readable messages are answered as always (here: switching to English).
        await say(synapse, human, room, "3", "Do you agree?")

        # A new session withheld again: told again, now in the person's language.
        del human.olm.outbound_group_sessions[room]
        _, withheld = await send_without_key(human, room, "1")
        assert withheld
        told = await synapse.wait_for_message(human, room, has("could not decrypt"))
        assert told.body == runtime.content.text("en", "core.unreadable", emergency="110")
        with pytest.raises(TimeoutError):
            await synapse.wait_for_message(human, room, unreadable, timeout=0.3)
    finally:
        await bot.stop()
