"""Matrix without a coordinator room: every report reaches each coordinator personally, in
a direct room — one they already share with the bot, or one the bot opens and invites
them to. A real Synapse; the coordinators are separate accounts with their own devices."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nio
from sqlalchemy import select

from bot.runtime import Runtime
from bot.storage.models import OutboxMessage, Report, User
from bot.transports.registry import console_active
from tests.test_matrix import Bot, has, launch, onboard, open_dm, say

if TYPE_CHECKING:
    from tests.peers.synapse import SynapseServer
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory


class WithoutRoom:
    """The bot's nio client as it is just after opening a room, before its sync shows it
    (a snapshot: the running sync cannot bring the room back mid-test)."""

    def __init__(self, client: nio.AsyncClient, room_id: str) -> None:
        self._client = client
        self.rooms = {key: room for key, room in client.rooms.items() if key != room_id}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def quick_report(synapse: SynapseServer, human: nio.AsyncClient, room: str) -> str:
    """A report with words and a place, no photo, sent with contact allowed; its reference."""
    await say(synapse, human, room, "!report", "Passiert es gerade jetzt")
    await say(synapse, human, room, "2", "Was haben Sie beobachtet?")
    await say(synapse, human, room, "Plane aufgeschlitzt am Rastplatz", "Wo war das?")
    await synapse.send_location(human, room, 51.3, 7.4)
    await synapse.wait_for_message(human, room, has("Ein Foto, Video"))
    await say(synapse, human, room, "!skip", "bitte prüfen")
    sent = await say(synapse, human, room, "1", "Meldung gesendet")  # contact allowed
    found = re.search(r"SP-\d{4}-\d{6}", sent.body)
    assert found is not None
    return found[0]


async def sent_to(bot: Bot, chat_id: str, count: int) -> None:
    """Wait until `count` outbox rows for `chat_id` have gone out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        async with bot.runtime.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage).where(
                        OutboxMessage.chat_id == chat_id, OutboxMessage.status == "sent"
                    )
                )
            ).all()
        if len(rows) >= count:
            return
        assert loop.time() < deadline, f"only {len(rows)} of {count} sent to {chat_id}"
        await asyncio.sleep(0.05)


async def private_chat_of(bot: Bot, user_id: str) -> str:
    async with bot.runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == user_id))
    assert user is not None
    return user.chat_id


async def test_without_a_coordinator_room_each_coordinator_gets_reports_in_a_direct_room(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    # Two coordinators named in the config, each a person with an encrypting client:
    # one has never talked to the bot, the other opened a direct chat but never wrote.
    new_account, known_account = (
        await matrix_user_factory("koord"),
        await matrix_user_factory("koord"),
    )
    new = await matrix_client_factory(new_account, encryption=True)
    known = await matrix_client_factory(known_account, encryption=True)
    runtime.settings.matrix.coordinators = [new_account.user_id, known_account.user_id]
    bot = await launch(
        runtime,
        synapse,
        matrix_user_factory,
        matrix_client_factory,
        tmp_path / "bot-store",
        coordinator_room=False,
    )
    try:
        assert not runtime.settings.matrix.coordinator_room
        assert not console_active(runtime.settings)  # Matrix is the only door
        known_room = await synapse.create_dm(known, bot.user_id, encrypted=True)
        await synapse.wait_for_join(known, known_room, bot.user_id)

        driver, driver_room = await open_dm(
            synapse, bot, matrix_user_factory, matrix_client_factory
        )
        await onboard(synapse, driver, driver_room)
        reference = await quick_report(synapse, driver, driver_room)

        # The coordinator without a room is invited to a new one; the report is sent there
        # before they accept, and is readable (and decrypted) once they join.
        direct = await synapse.wait_for_invite(new, bot.user_id)
        await sent_to(bot, new_account.user_id, 1)
        await synapse.join(new, direct)
        assert new.rooms[direct].encrypted
        card = await synapse.wait_for_message(new, direct, has(reference))
        assert card.decrypted
        assert "Plane aufgeschlitzt am Rastplatz" in card.body
        assert "1. 👀 Gesehen\n2. 👮 An Polizei gegeben\n3. 📁 Abschließen" in card.body
        place = await synapse.wait_for_message(
            new, direct, lambda e: getattr(e, "msgtype", "") == "m.location"
        )
        assert place.source["content"]["geo_uri"] == "geo:51.300000,7.400000"
        assert await private_chat_of(bot, new_account.user_id) == direct

        # The other coordinator reads it in the room they opened: no invite for them.
        other = await synapse.wait_for_message(known, known_room, has(reference))
        assert other.decrypted
        assert not known.invited_rooms
        assert await private_chat_of(bot, known_account.user_id) == known_room

        # Triage by typing the option's number, then by command; the reporter hears both.
        await say(synapse, new, direct, "1", f"{reference}: jetzt „gesehen“")
        news = await synapse.wait_for_message(driver, driver_room, has(f"Meldung {reference}"))
        assert "gesehen" in news.body
        await say(synapse, new, direct, f"!triage {reference} police", "an die Polizei gegeben")
        news = await synapse.wait_for_message(driver, driver_room, has(f"Meldung {reference}"))
        assert "an die Polizei gegeben" in news.body
        async with runtime.sessions() as session:
            stored = await session.scalar(select(Report).where(Report.reference == reference))
        assert stored is not None and stored.status == "police"

        # The next report goes into the same room: no second invite, no second room.
        second = await quick_report(synapse, driver, driver_room)
        await synapse.wait_for_message(new, direct, has(second))
        assert not new.invited_rooms
        rooms = bot.transport.client.rooms
        shared = [room for room in rooms.values() if new.user_id in room.users]
        assert [room.room_id for room in shared] == [direct]

        # A room the bot opened that its sync does not show (yet): the same room again,
        # never a second one (sending then waits for the sync, see test_matrix.py).
        before_sync = WithoutRoom(bot.transport.client, direct)
        assert await bot.transport.sender.direct.room_for(before_sync, new.user_id) == direct
    finally:
        await bot.stop()
