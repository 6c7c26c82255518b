"""Privacy: export, erasure, and logs without personal content."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from bot import logs
from bot.runtime import Runtime
from bot.storage.models import AuditEntry, ConversationEntry, DialogueState, Report, User
from tests.chat import Chat
from tests.test_report import quick_report

PLANTED = {"text": "Ohligser Heide", "plate": "K-XY 4711", "make": "Volkswagen Crafter"}


async def report_with_planted_values(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("/report")
    await chat.press("Nein")
    await chat.press("Verdächtiges Fahrzeug")
    await chat.press("Überspringen")  # own words
    await chat.send(f"Rastplatz {PLANTED['text']}")
    await chat.press("Überspringen")  # files
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Gerade eben")
    await chat.press("Fahrzeuge")
    await chat.press("Transporter")
    await chat.send(PLANTED["make"])
    await chat.press("Überspringen")  # model
    await chat.press("Überspringen")  # colour
    await chat.send(PLANTED["plate"])
    await chat.press("Das ist alles")
    await chat.press("Überspringen")  # motorway
    await chat.press("Überspringen")  # phone
    await chat.share_location(51.1435, 7.0267)  # stray, answered with a hint
    await chat.press("Rückfragen erlaubt")


async def test_mydata_exports_everything_stored_about_the_person(
    chat: Chat, runtime: Runtime
) -> None:
    await report_with_planted_values(chat)
    await chat.send("/mydata")
    [attachment] = chat.replies[0].attachments
    export = json.loads(runtime.core.media.read(attachment.sha256))
    assert export["profile"]["role"] == "truck_driver"
    assert export["reports"][0]["answers"]["plate"] == PLANTED["plate"]
    assert any(PLANTED["make"] == entry["text"] for entry in export["conversation"])
    assert "1 Meldung" in chat.screen


@pytest.mark.parametrize("mode", ["anonymise", "erase"])
async def test_delete_me_erases_the_person_and_handles_reports_per_config(
    chat: Chat, runtime: Runtime, mode: str
) -> None:
    runtime.settings.retention.on_erasure = mode  # type: ignore[assignment]
    await report_with_planted_values(chat)
    await chat.send("/delete_me")
    assert "Wirklich alles löschen?" in chat.screen
    await chat.press("Ja, alles löschen")
    assert "Gelöscht" in chat.screen
    async with runtime.sessions() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        log = await session.scalar(select(func.count()).select_from(ConversationEntry))
        states = await session.scalar(select(func.count()).select_from(DialogueState))
        reports = (await session.scalars(select(Report))).all()
        audit = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "user_erased"))
        ).all()
    assert (users, log, states) == (0, 0, 0)
    if mode == "erase":
        assert reports == []
    else:
        assert len(reports) == 1 and reports[0].user_id is None
        assert reports[0].answers["plate"] == PLANTED["plate"]
    assert len(audit) == 1 and audit[0].actor_id is None
    assert PLANTED["plate"] not in json.dumps(audit[0].details)
    # A fresh start works afterwards.
    await chat.send("/start")
    assert "Sind Sie einverstanden?" in chat.screen


async def test_logs_carry_no_texts_plates_or_places_even_at_debug(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    logs.hold_libraries(library_payloads=False)  # as `sicherheitsbot` sets them up
    with caplog.at_level(logging.DEBUG):
        await report_with_planted_values(chat)
        await quick_report_again(chat)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "handled" in logged  # the core does log each event
    for value in PLANTED.values():
        assert value not in logged
    assert "51.1435" not in logged and "7.0267" not in logged


async def quick_report_again(chat: Chat) -> None:
    await chat.send("/report")
    await quick_report(chat)
    await chat.press("Anonym senden")
