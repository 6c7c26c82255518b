"""The Matrix transport end to end: a real Synapse, the bot, and humans as matrix-nio clients."""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import nio
import pytest
from nio.api import Api
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.core.events import Choice, Event, Location, Reply
from bot.delivery.outbox import OutboxWorker, RetryLater, TransientFailure, Unreachable
from bot.runtime import Runtime
from bot.storage.models import ConversationEntry, DialogueState, Report, User
from bot.transports.matrix import MatrixTransport
from bot.transports.matrix_inbound import parse_geo_uri, strip_reply_fallback
from bot.transports.matrix_outbound import failure, location_content, text_content
from bot.transports.matrix_state import STATE_FILE, StoreInUse, SyncState
from tests.chat import Chat
from tests.peers.synapse import MatrixAccount, MessagePredicate, SynapseServer

if TYPE_CHECKING:
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory

MENU = "Was möchten Sie tun?"
CONSENT = "Sind Sie einverstanden?"


def _png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00\x80\xff" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))


def has(text: str) -> MessagePredicate:
    return lambda event: isinstance(event, nio.RoomMessageText) and text in event.body


@dataclass
class Bot:
    """The bot under test: its transport, its outbox worker, and the coordinator side."""

    runtime: Runtime
    account: MatrixAccount
    transport: MatrixTransport
    worker: asyncio.Task[None]
    coordinator: nio.AsyncClient | None = None
    coordinator_room: str = ""

    @property
    def user_id(self) -> str:
        return self.account.user_id

    async def stop(self) -> None:
        self.worker.cancel()
        await asyncio.gather(self.worker, return_exceptions=True)
        await self.transport.stop()

    async def restart(self) -> None:
        """A new transport and worker on the same store directory and database."""
        await self.stop()
        self.transport, self.worker = await _run(self.runtime)


async def _run(runtime: Runtime) -> tuple[MatrixTransport, asyncio.Task[None]]:
    transport = MatrixTransport(runtime)
    await transport.start()
    worker = OutboxWorker(runtime.sessions, transport.sender, transport.limits)
    return transport, asyncio.create_task(worker.run_forever(idle=0.1))


async def launch(
    runtime: Runtime,
    synapse: SynapseServer,
    users: UserFactory,
    clients: ClientFactory,
    store: Path,
    *,
    encryption: bool = True,
    password_login: bool = False,
    allowed_servers: tuple[str, ...] = (),
    coordinator_room: bool = True,
    encrypted_coordinator_room: bool = False,
) -> Bot:
    admin = await users("admin", admin=True)
    account = await users("bot")
    await synapse.override_ratelimit(admin.access_token, account.user_id)
    matrix = runtime.settings.matrix
    matrix.enabled = True
    matrix.homeserver = synapse.base_url
    matrix.user_id = account.user_id
    if password_login:  # logs in once, then keeps token and device in the store
        matrix.password, matrix.access_token = SecretStr(account.password), None
    else:
        matrix.access_token = SecretStr(account.access_token)  # device found via whoami
    matrix.store_dir = store
    matrix.encryption = encryption
    matrix.allowed_servers = list(allowed_servers)
    coordinator: nio.AsyncClient | None = None
    room_id = ""
    if coordinator_room:
        # Created and the bot invited *before* its very first start: a pending invite.
        lead = await users("leitstelle")
        coordinator = await clients(lead, encryption=encrypted_coordinator_room)
        megolm = {"algorithm": "m.megolm.v1.aes-sha2"}
        state = [{"type": "m.room.encryption", "state_key": "", "content": megolm}]
        response = await coordinator.room_create(
            name="Koordination",
            invite=[account.user_id],
            initial_state=state if encrypted_coordinator_room else [],
        )
        assert isinstance(response, nio.RoomCreateResponse)
        room_id = response.room_id
        matrix.coordinators = [lead.user_id]
        matrix.coordinator_room = room_id
    transport, worker = await _run(runtime)
    bot = Bot(runtime, account, transport, worker, coordinator, room_id)
    if coordinator is not None:
        await synapse.wait_for_join(coordinator, room_id, account.user_id)
    return bot


@pytest.fixture
async def bot(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> AsyncIterator[Bot]:
    running = await launch(
        runtime, synapse, matrix_user_factory, matrix_client_factory, tmp_path / "bot-store"
    )
    yield running
    await running.stop()


async def open_dm(
    synapse: SynapseServer,
    bot: Bot,
    users: UserFactory,
    clients: ClientFactory,
    encrypted: bool = False,
    name: str = "fahrer",
) -> tuple[nio.AsyncClient, str]:
    human = await clients(await users(name), encryption=encrypted)
    room_id = await synapse.create_dm(human, bot.user_id, encrypted=encrypted)
    await synapse.wait_for_join(human, room_id, bot.user_id)
    return human, room_id


async def say(
    synapse: SynapseServer, human: nio.AsyncClient, room_id: str, text: str, expect: str
) -> nio.RoomMessage:
    """Send `text`, return the bot's message containing `expect`."""
    await synapse.send_text(human, room_id, text)
    return await synapse.wait_for_message(human, room_id, has(expect))


async def onboard(synapse: SynapseServer, human: nio.AsyncClient, room_id: str) -> None:
    """Four inputs: the greeting comes in German with the consent at once."""
    await say(synapse, human, room_id, "!start", CONSENT)
    await say(synapse, human, room_id, "1", "Was machen Sie beruflich?")  # consent
    await say(synapse, human, room_id, "4", "In welcher Region")  # taxi
    await say(synapse, human, room_id, "4", MENU)  # Köln


# -- pure translation -------------------------------------------------------------------------


def test_rendering_escapes_and_numbers_the_options() -> None:
    options = [Choice("x", "Ja"), Choice("y", "Nein")]
    reply = Reply("a < b\nzweite Zeile", title="SP & Co", choices=options)
    content = text_content(reply)
    assert content is not None
    assert content["body"] == "SP & Co\na < b\nzweite Zeile\n\n1. Ja\n2. Nein"
    assert content["formatted_body"] == (
        "<b>SP &amp; Co</b><br>a &lt; b<br>zweite Zeile<br><br>1. Ja<br>2. Nein"
    )
    assert text_content(Reply("")) is None


def test_rendering_a_lead_and_controls_keeps_one_blank_line_between_blocks() -> None:
    """What an answer said goes on top; a text from content ending in a newline adds no
    blank lines; controls are a line of commands, never numbered."""
    reply = Reply(
        "Sind Sie einverstanden?\n",  # a YAML block text ends with a newline
        lead="Gespeichert.\n",
        choices=[
            Choice("onb:consent:yes", "✅ Einverstanden"),
            Choice("onb:~skip", "⏭ Überspringen", "skip"),
            Choice("onb:~cancel", "✖️ Abbrechen", "cancel"),
        ],
    )
    content = text_content(reply)
    assert content is not None
    assert content["body"] == (
        "Gespeichert.\n\nSind Sie einverstanden?\n\n1. ✅ Einverstanden\n"
        "⏭ Überspringen: !skip · ✖️ Abbrechen: !cancel"
    )
    assert "\n\n\n" not in content["body"]
    assert content["formatted_body"] == (
        "Gespeichert.<br><br>Sind Sie einverstanden?<br><br>1. ✅ Einverstanden<br>"
        "⏭ Überspringen: !skip · ✖️ Abbrechen: !cancel"
    )
    controls_only = text_content(Reply("", choices=[Choice("f:~back", "⬅️ Zurück", "back")]))
    assert controls_only is not None and controls_only["body"] == "⬅️ Zurück: !back"
    place = location_content(Location(51.2277, 6.7735))
    assert place["geo_uri"] == "geo:51.227700,6.773500"
    assert place["org.matrix.msc3488.location"]["uri"] == place["geo_uri"]


def test_inbound_helpers_and_error_mapping() -> None:
    assert parse_geo_uri("geo:51.5,7.25;u=35") == Location(51.5, 7.25)
    assert not parse_geo_uri("geo:nonsense").valid
    assert strip_reply_fallback("> <@bot:x> Frage\n> mehr\n\n2") == "2"

    def error(code: str, status: int, retry_ms: int | None = None) -> nio.RoomSendError:
        response = nio.RoomSendError("nope", code, retry_ms)
        response.transport_response = type("R", (), {"status": status})()
        return response

    limited = failure(error("M_LIMIT_EXCEEDED", 429, 1500))
    assert isinstance(limited, RetryLater) and limited.seconds == 1.5
    assert isinstance(failure(error("M_FORBIDDEN", 403)), Unreachable)
    assert isinstance(failure(error("M_UNKNOWN", 502)), TransientFailure)


def test_sync_state_skips_replays_and_older_events(tmp_path: Path) -> None:
    state = SyncState(tmp_path / STATE_FILE)
    state.mark("!r", "$b", "@a:x", 2000)
    assert not state.is_new("!r", "$b", "@a:x", 2000, in_order=True)  # a replay
    assert not state.is_new("!r", "$a", "@a:x", 1000, in_order=True)  # older than handled
    assert state.is_new("!r", "$a", "@a:x", 1000, in_order=False)  # decrypted late
    assert state.is_new("!r", "$c", "@other:y", 1000, in_order=True)  # clocks differ


async def test_sync_state_remembers_who_was_told_until_they_write_readably(
    tmp_path: Path,
) -> None:
    state = SyncState(tmp_path / STATE_FILE)
    state.tell("!r", "@a:x")
    state.tell("!r", "@b:x")
    state.told_unreadable["!old"] = {"@c:x": 1}  # told long ago: forgotten on saving
    await state.save()
    loaded = SyncState.load(tmp_path / STATE_FILE)  # as after a restart
    assert loaded.was_told("!r", "@a:x") and loaded.was_told("!r", "@b:x")
    assert not loaded.was_told("!old", "@c:x")
    loaded.readable("!r", "@a:x")  # @a wrote something readable
    assert not loaded.was_told("!r", "@a:x") and loaded.was_told("!r", "@b:x")
    assert not loaded.was_told("!other", "@b:x")  # per room


# -- against Synapse --------------------------------------------------------------------------


async def test_onboarding_in_a_dm_and_leaving_when_alone(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    human, room_id = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
    greeting = await say(synapse, human, room_id, "!start", CONSENT)  # German, consent at once
    assert "Willkommen" in greeting.body and "110" in greeting.body
    assert "3. 🇬🇧 English\n4. 🇵🇱 Polski\n5. 🌐 Sprachen\n✖️ Abbrechen: !cancel" in greeting.body
    assert "\n\n\n" not in greeting.body  # the privacy text's final newline adds no gap
    await say(synapse, human, room_id, "1", "Was machen Sie beruflich?")
    roles = await say(synapse, human, room_id, "/settings", "Bitte zuerst")  # not done yet
    assert roles.sender == bot.user_id
    question = await synapse.wait_for_message(human, room_id, has("Was machen Sie beruflich?"))
    assert "4. 🚕 Taxi / Mietwagen" in question.body
    source = question.source["content"]
    assert source["format"] == "org.matrix.custom.html"
    assert "<br>4. 🚕 Taxi / Mietwagen" in source["formatted_body"]
    await say(synapse, human, room_id, "4", "In welcher Region")
    menu = await say(synapse, human, room_id, "4", MENU)
    assert "<b>Menü</b>" in menu.source["content"]["formatted_body"]

    async with bot.runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == human.user_id))
    assert user is not None and (user.transport, user.chat_id) == ("matrix", room_id)
    assert (user.language, user.role, user.region) == ("de", "taxi_driver", "koeln")

    assert isinstance(await human.room_leave(room_id), nio.RoomLeaveResponse)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while room_id in bot.transport.client.rooms:  # the bot leaves the room it is alone in
        assert loop.time() < deadline, "the bot stayed alone in the room"
        await asyncio.sleep(0.05)


async def test_report_with_location_and_image_reaches_coordinators_and_triage(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    bot = await launch(
        runtime,
        synapse,
        matrix_user_factory,
        matrix_client_factory,
        tmp_path / "bot-store",
        encrypted_coordinator_room=True,
    )
    try:
        await _report_and_triage(bot, synapse, matrix_user_factory, matrix_client_factory)
    finally:
        await bot.stop()


async def _report_and_triage(
    bot: Bot, synapse: SynapseServer, users: UserFactory, clients: ClientFactory
) -> None:
    human, room = await open_dm(synapse, bot, users, clients)
    await onboard(synapse, human, room)
    await say(synapse, human, room, "!report", "Passiert es gerade jetzt")
    await say(synapse, human, room, "2", "Was haben Sie beobachtet?")  # not now
    await say(synapse, human, room, "3", "In eigenen Worten")  # cargo theft
    await say(synapse, human, room, "Plane aufgeschlitzt, zwei Männer", "Wo war das?")
    await synapse.send_location(human, room, 50.9375, 6.9603)
    await synapse.wait_for_message(human, room, has("Ein Foto, Video"))
    png = _png(3, 2)
    bot.runtime.core.media.max_bytes = 10  # first an image too large for the deployment
    await synapse.send_image(human, room, png, "zu-gross.png", "image/png")
    await synapse.wait_for_message(human, room, has("Die Datei ist zu groß"))
    bot.runtime.core.media.max_bytes = 1024 * 1024
    await synapse.send_image(human, room, png, "plane.png", "image/png")
    summary = await synapse.wait_for_message(human, room, has("bitte prüfen"))
    assert "1 Datei" in summary.body and "3. ➕ Einzelheiten ergänzen" in summary.body
    # The details, offered at the summary: time, people and vehicles, motorway, phone.
    await say(synapse, human, room, "3", "Wann war das?")
    await say(synapse, human, room, "1", "Haben Sie Personen oder Fahrzeuge")  # just now
    await say(synapse, human, room, "4", "War es an einer Autobahn?")  # neither
    await say(synapse, human, room, "2", "Telefonnummer")  # no motorway
    summary = await say(synapse, human, room, "!skip", "bitte prüfen")  # no phone
    assert "Autobahn: Nein" in summary.body and "Wann: Gerade eben" in summary.body
    sent = await say(synapse, human, room, "1", "Meldung gesendet")  # contact allowed
    match = re.search(r"SP-\d{4}-\d{6}", sent.body)
    assert match is not None
    reference = match.group(0)

    lead, lead_room = bot.coordinator, bot.coordinator_room
    assert lead is not None
    report = await synapse.wait_for_message(lead, lead_room, has(reference))
    assert report.decrypted  # the coordinator room is encrypted
    assert "<b>" + reference in report.source["content"]["formatted_body"]
    assert "2. 👮 An Polizei gegeben" in report.body
    place = await synapse.wait_for_message(
        lead, lead_room, lambda e: getattr(e, "msgtype", "") == "m.location"
    )
    assert place.source["content"]["geo_uri"] == "geo:50.937500,6.960300"
    image = await synapse.wait_for_message(
        lead, lead_room, lambda e: isinstance(e, nio.RoomEncryptedImage)
    )
    assert await synapse.download_media(lead, image) == png

    await say(synapse, lead, lead_room, "2", "an die Polizei gegeben")
    news = has(f"Neuigkeit zu Ihrer Meldung {reference}")
    notice = await synapse.wait_for_message(human, room, news)
    assert "an die Polizei gegeben" in notice.body
    async with bot.runtime.sessions() as session:
        stored = await session.scalar(select(Report).where(Report.reference == reference))
    assert stored is not None and stored.status == "police"
    assert len(stored.answers["media"]) == 1


async def test_a_quick_report_in_an_encrypted_dm_takes_six_inputs(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    """From !report to a reference with typed words, an m.location and a photo: six
    messages from the driver, every answer encrypted, and the coordinators get it all."""
    human, room = await open_dm(
        synapse, bot, matrix_user_factory, matrix_client_factory, encrypted=True
    )
    await onboard(synapse, human, room)
    inputs: list[str] = []

    async def answer(text: str, expect: str) -> nio.RoomMessage:
        inputs.append(text)
        found = await say(synapse, human, room, text, expect)
        assert found.decrypted
        return found

    await answer("!report", "Passiert es gerade jetzt")
    await answer("2", "Was haben Sie beobachtet?")
    await answer("Plane aufgeschlitzt, zwei Männer mit Messer am Lkw", "Wo war das?")
    inputs.append("m.location")
    await synapse.send_location(human, room, 51.4556, 7.0116)
    await synapse.wait_for_message(human, room, has("Ein Foto, Video"))
    photo = _png(5, 3)
    inputs.append("m.image")
    await synapse.send_image(human, room, photo, "lkw.png", "image/png", encrypted=True)
    summary = await synapse.wait_for_message(human, room, has("bitte prüfen"))
    assert "1. 📨 Senden – Rückfragen erlaubt" in summary.body
    assert "⚠️ Raub oder Versuch" in summary.body  # inferred from "Messer"
    sent = await answer("1", "Meldung gesendet")
    reference = re.search(r"SP-\d{4}-\d{6}", sent.body)
    assert reference is not None
    assert len(inputs) <= 6, inputs

    lead, lead_room = bot.coordinator, bot.coordinator_room
    assert lead is not None
    card = await synapse.wait_for_message(lead, lead_room, has(reference[0]))
    assert "zwei Männer mit Messer" in card.body
    place = await synapse.wait_for_message(
        lead, lead_room, lambda e: getattr(e, "msgtype", "") == "m.location"
    )
    assert place.source["content"]["geo_uri"] == "geo:51.455600,7.011600"
    image = await synapse.wait_for_message(
        lead, lead_room, lambda e: isinstance(e, nio.RoomMessageImage)
    )
    assert await synapse.download_media(lead, image) == photo
    async with bot.runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == human.user_id))
        assert user is not None
        received = await session.scalar(
            select(func.count())
            .select_from(ConversationEntry)
            .where(ConversationEntry.user_id == user.id, ConversationEntry.direction == "in")
        )
    assert received == 4 + len(inputs)  # onboarding, then the report: nothing else was needed


async def test_tips_and_silent_alarm(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
    guide = await say(synapse, human, room, "!alarm", "(1/")  # public: before onboarding
    assert "Taxi-Alarm" in guide.body
    await say(synapse, human, room, "1", "(2/")  # "1. ➡️ Weiter" typed back
    title = bot.runtime.content.text("de", "tips.title")
    await say(synapse, human, room, "!tips", title)


async def test_encrypted_dm_end_to_end(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    human, room = await open_dm(
        synapse, bot, matrix_user_factory, matrix_client_factory, encrypted=True
    )
    assert human.rooms[room].encrypted
    answer = await say(synapse, human, room, "!start", CONSENT)
    assert answer.decrypted and answer.session_id  # travelled as m.room.encrypted
    await bot.restart()  # the crypto store and the sync position survive
    answer = await say(synapse, human, room, "1", "Was machen Sie beruflich?")
    assert answer.decrypted
    png = _png(4, 4)
    stored = bot.runtime.core.media.path_for(hashlib.sha256(png).hexdigest())
    await synapse.send_image(human, room, png, "foto.png", "image/png", encrypted=True)
    await synapse.wait_for_message(human, room, has("Was machen Sie beruflich?"))  # again
    assert not stored.exists()  # no step wanted it: never downloaded
    await say(synapse, human, room, "4", "In welcher Region")
    await say(synapse, human, room, "4", MENU)
    await say(synapse, human, room, "!report", "gerade jetzt")
    await say(synapse, human, room, "2", "Was haben Sie beobachtet?")
    await say(synapse, human, room, "Transporter kreist um die Lkw", "Wo war das?")
    await say(synapse, human, room, "Autohof Lippetal", "Foto")
    await synapse.send_image(human, room, png, "foto.png", "image/png", encrypted=True)
    await synapse.wait_for_message(human, room, has("bitte prüfen"))
    assert stored.read_bytes() == png  # downloaded and decrypted by the bot, when wanted


Shares = list[tuple[Any, dict[str, Any]]]


async def send_without_key(human: nio.AsyncClient, room: str, text: str) -> tuple[str, Shares]:
    """Send `text` encrypted, but keep the room key from the bot (as a client that had not
    seen the bot's device would). Returns the event id and the withheld key messages (none
    when the session in use was withheld before)."""
    await human.sync(timeout=0)
    if human.should_query_keys:
        await human.keys_query()
    if not human.rooms[room].members_synced:
        await human.joined_members(room)
    missing = human.get_missing_sessions(room)
    if missing:
        await human.keys_claim(missing)
    shares: Shares = []
    if room not in human.olm.outbound_group_sessions:  # a new session: its key stays here
        users = list(human.rooms[room].users)
        shares = list(human.olm.share_group_session_parallel(room, users, True))
        human.olm.outbound_group_sessions[room].shared = True
    kind, content = human.encrypt(room, "m.room.message", {"msgtype": "m.text", "body": text})
    sent = await human._send(
        nio.RoomSendResponse,
        *Api.room_send(human.access_token, room, kind, content, uuid4()),
        (room,),
    )
    assert isinstance(sent, nio.RoomSendResponse)
    return str(sent.event_id), shares


async def hand_over(human: nio.AsyncClient, room: str, shares: Shares) -> None:
    """The withheld room key reaches the bot at last."""
    for _, to_device in shares:
        request = Api.to_device(human.access_token, "m.room.encrypted", to_device, uuid4())
        await human._send(nio.ShareGroupSessionResponse, *request, (room, set()))


async def test_an_encrypted_message_waits_for_its_keys(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    """The room key travels *after* the message (as with a slow sender device): the bot
    keeps the event, and answers it once the key arrives."""
    human, room = await open_dm(
        synapse, bot, matrix_user_factory, matrix_client_factory, encrypted=True
    )
    event_id, shares = await send_without_key(human, room, "!start")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    waiting = bot.transport.state.undecrypted
    while not any(item["source"]["event_id"] == event_id for item in waiting):
        assert loop.time() < deadline, "the bot never saw the encrypted message"
        await asyncio.sleep(0.05)
        waiting = bot.transport.state.undecrypted
    await hand_over(human, room, shares)  # now the room key
    answer = await synapse.wait_for_message(human, room, has(CONSENT))
    assert answer.decrypted
    assert not bot.transport.state.undecrypted


async def test_restart_neither_repeats_nor_forgets(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    store = tmp_path / "bot-store"
    bot = await launch(
        runtime,
        synapse,
        matrix_user_factory,
        matrix_client_factory,
        store,
        encryption=False,  # the transport keeps the sync position itself (nio would not)
        password_login=True,
        coordinator_room=False,
    )
    try:
        device = bot.transport.client.device_id
        assert (store / "session.json").stat().st_mode & 0o077 == 0  # the token: owner only
        human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
        await say(synapse, human, room, "!start", CONSENT)
        await bot.stop()
        assert SyncState.load(store / STATE_FILE).next_batch
        await synapse.send_text(human, room, "1")  # consent, while the bot is down
        bot.transport, bot.worker = await _run(runtime)
        assert bot.transport.client.device_id == device  # the saved login, no new one
        await synapse.wait_for_message(human, room, has("Was machen Sie beruflich?"))
        await say(synapse, human, room, "4", "In welcher Region")
        await bot.restart()  # again, with nothing in between
        await say(synapse, human, room, "4", MENU)
    finally:
        await bot.stop()
    async with runtime.sessions() as session:
        inbound = await session.scalar(
            select(func.count())
            .select_from(ConversationEntry)
            .where(ConversationEntry.direction == "in", ConversationEntry.transport == "matrix")
        )
    assert inbound == 4  # !start, 1, 4, 4: nothing handled twice
    with pytest.raises(TimeoutError):  # and no old question asked again
        await synapse.wait_for_message(human, room, has(CONSENT), timeout=0.3)


async def test_killed_before_saving_its_sync_position_it_handles_nothing_twice(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    """The crash of the issue: an answer handled, the process gone before the sync position
    (and its record of handled events) reached the disk. The restarted bot is given the
    same event again; the database, where it was recorded with its effects, drops it."""
    store = tmp_path / "bot-store"
    bot = await launch(
        runtime, synapse, matrix_user_factory, matrix_client_factory, store,
        encryption=False, coordinator_room=False,
    )  # fmt: skip
    try:
        human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
        await onboard(synapse, human, room)
        await say(synapse, human, room, "!report", "gerade jetzt")
        await bot.transport.drain()
        await bot.transport.state.save()
        saved = (store / STATE_FILE).read_bytes()  # the last position that reached the disk
        await say(synapse, human, room, "2", "Was haben Sie beobachtet?")  # not urgent
        await bot.stop()
        (store / STATE_FILE).write_bytes(saved)  # killed: the newer position never saved
        bot.transport, bot.worker = await _run(runtime)
        # The sync from the old position brings "2" again: dropped, so these words are
        # the answer to "what did you see?", not to the question after it.
        await say(synapse, human, room, "Zwei Männer schlitzen Planen auf", "Wo war das?")
    finally:
        await bot.stop()
    async with runtime.sessions() as session:
        twos = await session.scalar(
            select(func.count())
            .select_from(ConversationEntry)
            .where(ConversationEntry.direction == "in", ConversationEntry.text == "2")
        )
        state = await session.scalar(select(DialogueState).where(DialogueState.flow == "rep"))
    assert twos == 1
    assert state is not None and state.data["answers"]["category"] == "cargo_theft"


async def test_a_second_process_on_the_same_matrix_store_is_refused(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    store = tmp_path / "bot-store"
    bot = await launch(
        runtime, synapse, matrix_user_factory, matrix_client_factory, store,
        coordinator_room=False,
    )  # fmt: skip
    try:
        with pytest.raises(StoreInUse, match="another process uses the store"):
            await MatrixTransport(runtime).start()
    finally:
        await bot.stop()
    again = MatrixTransport(runtime)  # once the first has stopped, the store is free
    await again.start()
    await again.stop()


async def test_personal_answers_stay_out_of_a_dm_someone_else_joined(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    """The finding: a driver invited someone into the DM and sent !mydata; the export went
    into the room and the stranger downloaded it. Now a room with others gets nothing
    personal."""
    human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
    await onboard(synapse, human, room)
    stranger_account = await matrix_user_factory("fremder")
    stranger = await matrix_client_factory(stranger_account)
    invited = await human.room_invite(room, stranger_account.user_id)
    assert isinstance(invited, nio.RoomInviteResponse)
    await synapse.join(stranger, room)
    await synapse.wait_for_join(human, room, stranger_account.user_id)
    await say(synapse, human, room, "!mydata", "direkten Chat")
    await say(synapse, human, room, "!myreports", "direkten Chat")
    for _ in range(2):  # the stranger reads the same two answers, and nothing else
        await synapse.wait_for_message(stranger, room, has("direkten Chat"))

    def media(event: nio.RoomMessage) -> bool:
        return isinstance(event, nio.RoomMessageMedia | nio.RoomEncryptedMedia)

    with pytest.raises(TimeoutError):  # no export in the room
        await synapse.wait_for_message(stranger, room, media, timeout=0.5)


async def test_group_room_passes_only_what_is_meant_for_the_bot(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    alice = await matrix_client_factory(await matrix_user_factory("alice"))
    bob_account = await matrix_user_factory("bob")
    bob = await matrix_client_factory(bob_account)
    created = await alice.room_create(name="Fahrer", invite=[bot.user_id, bob_account.user_id])
    assert isinstance(created, nio.RoomCreateResponse)
    room = created.room_id
    await synapse.join(bob, room)
    await synapse.wait_for_join(alice, room, bot.user_id)
    await synapse.send_text(alice, room, "Hallo zusammen")  # chatter: not for the bot
    await say(synapse, alice, room, "!help", "So funktioniert")
    await say(synapse, alice, room, f"{bot.user_id}: hilfe", "So funktioniert")  # a mention
    with pytest.raises(TimeoutError):  # "Hallo zusammen" was not answered
        await synapse.wait_for_message(alice, room, lambda e: True, timeout=0.3)


async def test_invite_from_a_server_not_allowed_is_ignored(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    bot = await launch(
        runtime,
        synapse,
        matrix_user_factory,
        matrix_client_factory,
        tmp_path / "bot-store",
        allowed_servers=("example.org",),
        coordinator_room=False,
    )
    try:
        human = await matrix_client_factory(await matrix_user_factory("fremd"))
        room = await synapse.create_dm(human, bot.user_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while room not in bot.transport.client.invited_rooms:  # the bot saw the invite
            assert loop.time() < deadline, "the invite never reached the bot"
            await asyncio.sleep(0.05)
        await bot.transport.drain()
        members = await human.joined_members(room)
        assert isinstance(members, nio.JoinedMembersResponse)
        assert [m.user_id for m in members.members] == [human.user_id]
        assert room not in bot.transport.client.rooms
    finally:
        await bot.stop()


async def test_a_failing_event_is_logged_and_the_next_one_answered(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle = bot.runtime.core.handle

    async def flaky(event: Event) -> list[Reply]:
        if event.text == "kaputt":
            raise RuntimeError("boom")
        return await handle(event)

    monkeypatch.setattr(bot.runtime.core, "handle", flaky)
    human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
    broken = await synapse.send_text(human, room, "kaputt")
    await say(synapse, human, room, "!help", "So funktioniert")
    assert f"matrix: event {broken} in {room} failed" in caplog.text


async def test_without_e2ee_the_bot_refuses_to_post_into_encrypted_rooms(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await launch(
        runtime,
        synapse,
        matrix_user_factory,
        matrix_client_factory,
        tmp_path / "bot-store",
        encryption=False,
        coordinator_room=False,
    )
    try:
        _, room = await open_dm(
            synapse, bot, matrix_user_factory, matrix_client_factory, encrypted=True
        )

        async def synced() -> None:  # the join is on the server before the bot's sync has it
            while not getattr(bot.transport.client.rooms.get(room), "encrypted", False):  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        await asyncio.wait_for(synced(), 20)
        with pytest.raises(TransientFailure):
            await bot.transport.sender.deliver(room, [Reply("Hallo")])
        assert f"refusing to post into encrypted room {room}" in caplog.text
    finally:
        await bot.stop()


async def test_a_room_not_synced_yet_is_tried_again_and_a_room_without_the_bot_is_unreachable(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    human, room = await say_hello(synapse, bot, matrix_user_factory, matrix_client_factory)
    rooms = bot.transport.client.rooms
    known = rooms.pop(room)  # as just after joining, before the bot's sync brings the room
    try:
        # Unreachable would mark the person inactive for good; it is only not synced yet.
        with pytest.raises(TransientFailure):
            await bot.transport.sender.deliver(room, [Reply("Hallo")])
    finally:
        rooms[room] = known
    created = await human.room_create(name="ohne Bot")
    assert isinstance(created, nio.RoomCreateResponse)
    with pytest.raises(Unreachable):
        await bot.transport.sender.deliver(created.room_id, [Reply("Hallo")])
    assert await bot.transport.sender.deliver(room, [Reply("Hallo")])


async def say_hello(
    synapse: SynapseServer, bot: Bot, users: UserFactory, clients: ClientFactory
) -> tuple[nio.AsyncClient, str]:
    """A DM the bot has answered in: its sync knows the room."""
    human, room = await open_dm(synapse, bot, users, clients)
    await say(synapse, human, room, "!start", CONSENT)
    return human, room


async def warn_taxis_in_koeln(bot: Bot) -> tuple[Chat, str]:
    """The terminal coordinator sends an alert to taxi drivers in Köln; returns the
    coordinator's chat and the alert's number."""
    leitstelle = Chat(bot.runtime.core, "leitstelle")
    for line in ["/broadcast", "Falsche Polizisten stoppen Taxis. Im Zweifel 110.", "/skip",
                 "/skip", "Taxi", "Warnung", "Taxi", "Fertig", "Köln", "Fertig", "Fertig",
                 "24", "Jetzt"]:  # fmt: skip
        await leitstelle.send(line)
    assert "Empfängerinnen und Empfänger: 1" in leitstelle.screen
    await leitstelle.press("Senden")
    number = re.search(r"#(\d+)", leitstelle.screen)
    assert number is not None
    return leitstelle, number[1]


async def test_an_alert_reaches_a_matrix_user_who_acknowledges_by_number(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
    await onboard(synapse, human, room)  # taxi driver in Köln
    leitstelle, number = await warn_taxis_in_koeln(bot)

    alert = await synapse.wait_for_message(human, room, has("Falsche Polizisten"))
    assert isinstance(alert, nio.RoomMessageText) and "1. ✅ Verstanden" in alert.body
    await say(synapse, human, room, "1", "Kenntnisnahme ist vermerkt")
    await leitstelle.send(f"/broadcast_status {number}")
    assert "Zugestellt: 1" in leitstelle.screen and "Verstanden: 1" in leitstelle.screen


async def test_an_alert_mid_report_asks_the_open_question_again_and_both_are_answered(
    bot: Bot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    """Trap 2: an alert arrives while the driver is in a report. The open question comes
    again under it; "1" answers that question, "Verstanden" acknowledges the alert, and
    the report goes on where it was."""
    human, room = await open_dm(synapse, bot, matrix_user_factory, matrix_client_factory)
    await onboard(synapse, human, room)
    await say(synapse, human, room, "!report", "Passiert es gerade jetzt")
    await say(synapse, human, room, "2", "Was haben Sie beobachtet?")
    leitstelle, number = await warn_taxis_in_koeln(bot)

    alert = await synapse.wait_for_message(human, room, has("Falsche Polizisten"))
    again = await synapse.wait_for_message(human, room, has("Was haben Sie beobachtet?"))
    assert alert.server_timestamp <= again.server_timestamp  # the question comes under it
    assert "1. 🧍 Verdächtige Person(en)" in again.body

    await say(synapse, human, room, "1", "In eigenen Worten")  # the question, not the alert
    await leitstelle.send(f"/broadcast_status {number}")
    assert "Zugestellt: 1" in leitstelle.screen and "Verstanden: 0" in leitstelle.screen

    await say(synapse, human, room, "Verstanden", "Kenntnisnahme ist vermerkt")
    await synapse.wait_for_message(human, room, has("In eigenen Worten"))  # asked again
    await leitstelle.send(f"/broadcast_status {number}")
    assert "Verstanden: 1" in leitstelle.screen

    await say(synapse, human, room, "Zwei Männer an einem Taxi", "Wo war das?")
    async with bot.runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == human.user_id))
        assert user is not None
        state = await session.scalar(
            select(DialogueState).where(
                DialogueState.user_id == user.id, DialogueState.chat_id == room
            )
        )
    assert state is not None and state.flow == "rep"
    answers = state.data["answers"]
    assert (answers["category"], answers["description"]) == ("person", "Zwei Männer an einem Taxi")
