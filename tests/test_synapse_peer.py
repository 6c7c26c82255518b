"""The Synapse peer works: users, DMs, text, location, images, E2EE and rate-limit overrides."""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

import nio
import pytest

from tests.peers.synapse import MessagePredicate, SynapseError, SynapseServer

if TYPE_CHECKING:
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory

pytest_plugins = ["tests.peers.synapse_fixtures"]

Pair = tuple[nio.AsyncClient, nio.AsyncClient, str]


def _png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid RGB PNG, made here rather than shipped."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))


async def _dm_pair(
    synapse: SynapseServer,
    users: UserFactory,
    clients: ClientFactory,
    encrypted: bool = False,
) -> Pair:
    """Alice opens a DM with Bob, Bob joins; returns (alice, bob, room_id)."""
    alice = await clients(await users("alice"), encryption=encrypted)
    bob_account = await users("bob")
    bob = await clients(bob_account, encryption=encrypted)
    room_id = await synapse.create_dm(alice, bob_account.user_id, encrypted=encrypted)
    await synapse.join(bob, room_id)
    await synapse.wait_for_join(alice, room_id, bob_account.user_id)
    return alice, bob, room_id


def _is_text(body: str) -> MessagePredicate:
    return lambda event: isinstance(event, nio.RoomMessageText) and event.body == body


async def test_text_round_trip_in_dm(
    synapse: SynapseServer, matrix_user_factory: UserFactory, matrix_client_factory: ClientFactory
) -> None:
    alice, bob, room_id = await _dm_pair(synapse, matrix_user_factory, matrix_client_factory)

    await synapse.send_text(alice, room_id, "Hallo Bob")
    received = await synapse.wait_for_message(bob, room_id, _is_text("Hallo Bob"))
    assert received.sender == alice.user_id
    assert bob.rooms[room_id].member_count == 2

    await synapse.send_text(bob, room_id, "Hallo Alice")
    reply = await synapse.wait_for_message(alice, room_id, _is_text("Hallo Alice"))
    assert reply.sender == bob.user_id


async def test_location_arrives_with_geo_uri(
    synapse: SynapseServer, matrix_user_factory: UserFactory, matrix_client_factory: ClientFactory
) -> None:
    alice, bob, room_id = await _dm_pair(synapse, matrix_user_factory, matrix_client_factory)

    await synapse.send_location(alice, room_id, 52.520008, 13.404954)
    event = await synapse.wait_for_message(
        bob, room_id, lambda e: isinstance(e, nio.RoomMessageUnknown)
    )
    assert event.msgtype == "m.location"
    content = event.source["content"]
    assert content["geo_uri"] == "geo:52.520008,13.404954"
    assert content["org.matrix.msc3488.location"]["uri"] == content["geo_uri"]


async def test_image_upload_and_download(
    synapse: SynapseServer, matrix_user_factory: UserFactory, matrix_client_factory: ClientFactory
) -> None:
    alice, bob, room_id = await _dm_pair(synapse, matrix_user_factory, matrix_client_factory)
    png = _png()

    await synapse.send_image(alice, room_id, png, "lage.png", "image/png")
    event = await synapse.wait_for_message(
        bob, room_id, lambda e: isinstance(e, nio.RoomMessageImage)
    )
    assert event.body == "lage.png"
    assert event.url.startswith("mxc://localhost/")
    download = await bob.download(mxc=event.url)
    assert isinstance(download, nio.DownloadResponse)
    assert download.body == png
    assert download.content_type == "image/png"


async def test_encrypted_dm_text_and_image(
    synapse: SynapseServer, matrix_user_factory: UserFactory, matrix_client_factory: ClientFactory
) -> None:
    alice, bob, room_id = await _dm_pair(
        synapse, matrix_user_factory, matrix_client_factory, encrypted=True
    )
    assert alice.rooms[room_id].encrypted

    await synapse.send_text(alice, room_id, "geheim")
    text = await synapse.wait_for_message(bob, room_id, _is_text("geheim"))
    assert text.decrypted
    assert text.session_id  # it travelled as m.room.encrypted (megolm)

    png = _png(3, 1)
    await synapse.send_image(alice, room_id, png, "geheim.png", "image/png", encrypted=True)
    image = await synapse.wait_for_message(
        bob, room_id, lambda e: isinstance(e, nio.RoomEncryptedImage)
    )
    assert await synapse.download_media(bob, image) == png


async def test_override_ratelimit_needs_admin(
    synapse: SynapseServer, matrix_user_factory: UserFactory
) -> None:
    admin = await matrix_user_factory("admin", admin=True)
    bot = await matrix_user_factory("bot")

    assert await synapse.get_ratelimit_override(admin.access_token, bot.user_id) == {}
    lifted = await synapse.override_ratelimit(admin.access_token, bot.user_id)
    assert lifted == {"messages_per_second": 0, "burst_count": 0}
    assert await synapse.get_ratelimit_override(admin.access_token, bot.user_id) == lifted
    with pytest.raises(SynapseError, match="403"):
        await synapse.override_ratelimit(bot.access_token, bot.user_id)


async def test_wait_for_message_fails_fast(
    synapse: SynapseServer, matrix_user_factory: UserFactory, matrix_client_factory: ClientFactory
) -> None:
    _, bob, room_id = await _dm_pair(synapse, matrix_user_factory, matrix_client_factory)
    await synapse.send_text(bob, room_id, "own message")  # own messages never match

    with pytest.raises(TimeoutError, match="no matching message"):
        await synapse.wait_for_message(bob, room_id, lambda e: True, timeout=0.3)
