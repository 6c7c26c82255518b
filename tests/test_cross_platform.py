"""One running bot serves Telegram and Matrix together: a report from Telegram reaches the
Matrix coordinator room with its photo, and a coordinator on Matrix warns Telegram users."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import nio
import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.storage.models import Report
from tests.peers.botapi import BotApiServer
from tests.peers.synapse import SynapseServer
from tests.test_matrix import Bot, has, launch
from tests.test_telegram import (
    OTHER,
    TOKEN,
    USER,
    Harness,
    png,
    press,
    report_until_media,
    text_of,
    with_buttons,
)

if TYPE_CHECKING:
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    peer = BotApiServer()
    peer.add_bot(TOKEN)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def both(
    runtime: Runtime,
    server: BotApiServer,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> AsyncIterator[Bot]:
    """Telegram and Matrix on one runtime; reports go to the Matrix coordinator room only."""
    telegram = Harness(runtime, server)
    await telegram.start(coordinator_chat_id=None, coordinators=[])
    matrix = await launch(
        runtime, synapse, matrix_user_factory, matrix_client_factory, tmp_path / "store"
    )
    yield matrix
    await matrix.stop()
    await telegram.stop()


async def coordinator_says(synapse: SynapseServer, bot: Bot, text: str, expect: str) -> str:
    assert bot.coordinator is not None
    await synapse.send_text(bot.coordinator, bot.coordinator_room, text)
    event = await synapse.wait_for_message(bot.coordinator, bot.coordinator_room, has(expect))
    assert isinstance(event, nio.RoomMessageText)
    return event.body


async def test_report_from_telegram_reaches_the_matrix_coordinator_room(
    both: Bot, server: BotApiServer, synapse: SynapseServer, runtime: Runtime
) -> None:
    picture = png(64, 48)
    await report_until_media(server)
    server.send_photo(USER, picture)  # one photo answers the question: the summary follows
    summary = await server.wait_for_message(USER, lambda m: "bitte prüfen" in text_of(m).lower())
    thanks = await press(server, summary, "Rückfragen erlaubt")
    reference = re.search(r"SP-\d{4}-\d{6}", text_of(thanks))
    assert reference is not None

    assert both.coordinator is not None
    card = await synapse.wait_for_message(
        both.coordinator, both.coordinator_room, has(reference[0])
    )
    assert isinstance(card, nio.RoomMessageText) and "Ladungsdiebstahl" in card.body
    image = await synapse.wait_for_message(
        both.coordinator,
        both.coordinator_room,
        lambda event: isinstance(event, nio.RoomMessageImage | nio.RoomEncryptedImage),
    )
    assert await synapse.download_media(both.coordinator, image) == picture

    # Triage on Matrix; the Telegram reporter hears of it.
    await coordinator_says(synapse, both, "2", "an die Polizei gegeben")
    notice = await server.wait_for_message(USER, lambda m: "Neuigkeit" in text_of(m))
    assert reference[0] in text_of(notice)
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.status == "police"


async def test_matrix_coordinator_warns_telegram_taxi_drivers_who_acknowledge(
    both: Bot, server: BotApiServer, synapse: SynapseServer
) -> None:
    await onboard_taxi(server, USER, "Köln")
    await onboard_taxi(server, OTHER, "Detmold")  # another region: not addressed
    answers = [
        ("!broadcast", "Text der Warnung"),
        ("Falsche Polizisten halten Taxis an. Im Zweifel 110.", "Englisch"),
        ("!skip", "Polnisch"),
        ("!skip", "Thema"),
        ("Taxi", "Dringlichkeit"),
        ("Warnung", "Rollen"),
        ("Taxi", "Rollen"),
        ("Fertig", "Regionen"),
        ("Köln", "Regionen"),
        ("Fertig", "Kanäle"),
        ("Fertig", "Stunden"),
        ("24", "Wann"),
        ("Jetzt", "Empfänger"),
    ]
    for text, expect in answers:
        body = await coordinator_says(synapse, both, text, expect)
    assert "Empfängerinnen und Empfänger: 1" in body
    sent = await coordinator_says(synapse, both, "Senden", "unterwegs")
    number = re.search(r"#(\d+)", sent)
    assert number is not None

    alert = await server.wait_for_message(USER, lambda m: "Falsche Polizisten" in text_of(m))
    await press(server, alert, "Verstanden")
    status = await coordinator_says(synapse, both, f"!broadcast_status {number[1]}", "Verstanden")
    assert "Verstanden: 1" in status and "Zugestellt: 1" in status
    assert not [m for m in server.messages_to(OTHER) if "Falsche Polizisten" in text_of(m)]


async def onboard_taxi(server: BotApiServer, user: int, region: str) -> None:
    server.send_text(user, "/start")
    question = await with_buttons(server, user)
    for label in ("✅", "Taxi", region):  # greeted in German, consent at once
        question = await press(server, question, label, user)
