"""The report dialogue through the terminal transport and the core."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.runtime import Runtime, open_runtime
from bot.storage.models import AuditEntry, OutboxMessage, Report
from tests.chat import Chat


async def start_report(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("/report")


async def quick_report(chat: Chat, category: str = "Ladungsdiebstahl") -> None:
    """The fewest taps to the summary: not urgent, a category, no words, the place as
    text, no photo."""
    await chat.press("Nein")
    await chat.press(category)
    await chat.press("Überspringen")  # own words
    await chat.send("Rastplatz Ohligser Heide, A3")
    await chat.press("Überspringen")  # files


async def outbox_for(runtime: Runtime, chat_id: str) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.chat_id == chat_id)
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


async def test_truck_driver_reports_slashed_tarpaulin_with_location_and_photo(
    chat: Chat, runtime: Runtime, tmp_path: Path
) -> None:
    photo = tmp_path / "plane.jpg"
    photo.write_bytes(b"\xff\xd8\xff" + b"tarpaulin" * 100)
    await start_report(chat)
    assert "gerade jetzt" in chat.screen
    await chat.press("Nein")
    await chat.send("Zwei Männer haben die Plane aufgeschnitten und sind weggefahren.")
    await chat.send("/location 51.1435 7.0267")
    assert "geparkt" in chat.screen  # safety reminder at the photo step
    await chat.send(f"/photo {photo}")
    assert "bitte prüfen" in chat.screen.lower()
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Heute, früher")
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    # Half an hour ago, but still today (just after midnight: midnight itself).
    earlier = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0))
    await chat.send(earlier.strftime("%H:%M"))
    await chat.press("Fahrzeuge")
    await chat.press("Transporter")
    await chat.send("Mercedes")
    await chat.press("Das ist alles")
    await chat.press("Ja")  # motorway
    await chat.send("A3")
    await chat.send("Richtung Oberhausen")
    await chat.press("Das ist alles")
    await chat.send("+49 170 1234567")  # phone
    assert "bitte prüfen" in chat.screen.lower()
    assert "A3" in chat.screen and "Mercedes" in chat.screen and "1 Datei" in chat.screen
    await chat.press("Rückfragen erlaubt")

    year = datetime.now().year
    assert f"SP-{year}-000001" in chat.screen
    assert "110" in chat.screen
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.category == "cargo_theft" and report.contact_allowed
    assert report.answers["place"] == {"lat": 51.1435, "lon": 7.0267}
    assert report.answers["road"] == "A3" and report.answers["make"] == "Mercedes"
    assert report.answers["description"].startswith("Zwei Männer")
    stored = runtime.core.media.path_for(report.answers["media"][0]["sha256"])
    assert stored.read_bytes() == photo.read_bytes()
    assert report.answers["media"][0]["file_name"] == "plane.jpg"

    # The full report is waiting for the coordinator; it is shown when they open the chat.
    [waiting] = await outbox_for(runtime, "leitstelle")
    view = waiting.payload[0]
    assert f"SP-{year}-000001" in view["title"]
    assert "Mercedes" in view["text"] and "openstreetmap.org" in view["text"]
    assert "+49 170 1234567" in view["text"]  # contact allowed: the phone is shown
    assert view["location"] == [51.1435, 7.0267]
    assert view["attachments"][0]["sha256"] == report.answers["media"][0]["sha256"]
    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.console.show_waiting()
    [delivered] = await outbox_for(runtime, "leitstelle")
    assert delivered.status == "sent" and delivered.payload == []  # shown: the copy is gone


async def test_quick_report_takes_few_taps_and_names_110(chat: Chat, runtime: Runtime) -> None:
    await start_report(chat)
    await quick_report(chat)
    assert "bitte prüfen" in chat.screen.lower()
    await chat.press("Anonym senden")
    assert "SP-" in chat.screen and "110" in chat.screen
    [delivered] = await outbox_for(runtime, "leitstelle")
    assert "anonym" in delivered.payload[0]["text"]


async def test_emergency_branch_shows_the_number_first(chat: Chat, runtime: Runtime) -> None:
    runtime.settings.bot.emergency_number = "112"
    await start_report(chat)
    await chat.press("Ja")
    assert chat.replies[-1].title == "☎️ 112"
    assert "verdächtige Beobachtungen" in chat.screen
    await chat.press("Einzelheiten jetzt festhalten")
    assert "Was haben Sie beobachtet?" in chat.screen


@pytest.mark.parametrize(
    ("language", "question", "confirm", "thanks"),
    [
        ("English", "happening right now", "Send anonymously", "Your report SP-"),
        ("Polski", "dzieje się teraz", "Wyślij anonimowo", "Twoje zgłoszenie SP-"),
    ],
)
async def test_report_in_english_and_polish(
    chat: Chat, language: str, question: str, confirm: str, thanks: str
) -> None:
    await chat.onboard(language=language, role="🚚", region="Detmold")
    await chat.send("/report")
    assert question in chat.screen
    await chat.send("2")  # no
    await chat.send("2")  # suspicious vehicle
    await chat.send("/skip")  # own words
    await chat.send("Parking Ohligser Heide")
    await chat.send("/skip")  # files
    await chat.press(confirm)
    assert thanks in chat.screen


async def test_back_skip_and_edit_from_the_summary(chat: Chat, runtime: Runtime) -> None:
    await start_report(chat)
    await chat.press("Nein")
    await chat.press("Verdächtiges Fahrzeug")
    await chat.press("Zurück")
    assert "Was haben Sie beobachtet?" in chat.screen
    await chat.press("GPS-Sender")
    await chat.press("Überspringen")
    await chat.send("Autohof Lippetal")
    await chat.press("Überspringen")
    assert "GPS-Sender" in chat.screen
    await chat.press("Ändern")
    await chat.press("Ort")
    await chat.send("Autohof Hamm-Uentrop")
    assert "Autohof Hamm-Uentrop" in chat.screen and "Lippetal" not in chat.screen
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Überspringen")  # when
    await chat.press("Personen")  # a new branch: its questions are asked, then the summary
    await chat.send("2")
    await chat.press("Das ist alles")
    await chat.press("Zur Übersicht")
    assert "Personen: 2" in chat.screen
    await chat.press("Anonym senden")
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None
    assert report.answers["place"] == {"text": "Autohof Hamm-Uentrop"}
    assert report.answers["person_count"] == 2 and report.category == "gps_tracker"


async def test_unknown_is_an_answer_and_cancel_asks_first_and_sends_nothing(
    chat: Chat, runtime: Runtime
) -> None:
    await start_report(chat)
    await chat.press("Nein")
    await chat.press("Person")
    await chat.send("Zwei Männer an der Zapfsäule")
    await chat.send("Tankstelle Kamen")
    await chat.press("Überspringen")  # files
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Gerade eben")
    await chat.press("Personen")
    await chat.press("Weiß nicht")  # how many
    assert "Geschlecht" in chat.screen
    await chat.press("Abbrechen")
    assert "verwerfen" in chat.screen.lower()  # asked once: a report with content
    await chat.press("Nein, weiter")
    assert "Geschlecht" in chat.screen  # nothing lost
    await chat.send("/cancel")
    await chat.press("Ja, verwerfen")
    assert "nichts gesendet" in chat.screen
    assert await outbox_for(runtime, "leitstelle") == []


async def test_future_time_is_refused_with_a_hint(chat: Chat) -> None:
    await start_report(chat)
    await chat.press("Nein")
    await chat.press("Person")
    await chat.press("Überspringen")
    await chat.send("Köln Hbf")
    await chat.press("Überspringen")
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Anderer Tag")
    tomorrow = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=1)
    await chat.send(tomorrow.strftime("%d.%m.%Y %H:%M"))
    assert "in der Zukunft" in chat.screen
    await chat.send("gestern irgendwann")
    assert "24.11.2026 14:30" in chat.screen  # the format hint
    yesterday = tomorrow - timedelta(days=2)
    await chat.send(yesterday.strftime("%d.%m.%Y %H:%M"))
    assert "Personen oder Fahrzeuge" in chat.screen


async def test_photo_over_the_size_limit_is_refused(
    chat: Chat, runtime: Runtime, tmp_path: Path
) -> None:
    runtime.core.media.max_bytes = 1000
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 5000)
    await start_report(chat)
    await quick_report_until_media(chat)
    await chat.send(f"/photo {big}")
    assert "zu groß" in chat.screen
    assert not list(runtime.core.media.directory.rglob("*")) or all(
        p.is_dir() for p in runtime.core.media.directory.rglob("*")
    )


async def quick_report_until_media(chat: Chat) -> None:
    await chat.press("Nein")
    await chat.press("Sonstiges")
    await chat.press("Überspringen")
    await chat.send("A1 Parkplatz Rieselfeld")
    assert "Foto" in chat.screen


async def test_half_finished_report_survives_a_restart(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "driver")
    await start_report(chat)
    await chat.press("Nein")
    await chat.press("Person")
    await chat.press("Überspringen")
    async with open_runtime(runtime.settings) as restarted:
        again = Chat(restarted.core, "driver")
        await again.send("Tankstelle Unna")
        assert "Foto" in again.screen  # the next question after the place
        await again.send("/report")
        assert "noch offen" in again.screen and "Foto" in again.screen


async def test_concurrent_submissions_get_distinct_references(runtime: Runtime) -> None:
    chats = [Chat(runtime.core, f"driver{i}") for i in range(6)]
    for chat in chats:
        await start_report(chat)
        await quick_report(chat)
    await asyncio.gather(*(chat.press("Anonym senden") for chat in chats))
    async with runtime.sessions() as session:
        references = (await session.scalars(select(Report.reference))).all()
    assert len(references) == 6 and len(set(references)) == 6
    assert sorted(int(r.rsplit("-", 1)[1]) for r in references) == [1, 2, 3, 4, 5, 6]


async def test_triage_changes_status_and_notifies_the_reporter(
    chat: Chat, runtime: Runtime
) -> None:
    await start_report(chat)
    await quick_report(chat)
    await chat.press("Rückfragen erlaubt")

    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.console.show_waiting()
    await coordinator.send("2")  # "An Polizei gegeben", typed as in the terminal
    assert "an die Polizei gegeben" in coordinator.screen
    # The other statuses stay one tap away, and the reporter can be answered.
    assert coordinator.labels == ["👀 Gesehen", "📁 Abschließen", "↩️ Meldende Person antworten"]
    await coordinator.send(f"/triage SP-{datetime.now().year}-000001 closed")
    await coordinator.send("Täter gefasst")
    assert "abgeschlossen" in coordinator.screen

    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert report is not None and report.status == "closed"
    assert report.status_note == "Täter gefasst"
    assert actions.count("report_status") == 2
    notices = [m for m in await outbox_for(runtime, "driver") if m.kind == "notice"]
    assert len(notices) == 2
    assert "an die Polizei gegeben" in notices[0].payload[0]["text"]
    await chat.send("/myreports")
    assert "abgeschlossen" in chat.screen


async def test_anonymous_reporter_is_not_notified(chat: Chat, runtime: Runtime) -> None:
    await start_report(chat)
    await quick_report(chat)
    await chat.press("Anonym senden")
    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.console.show_waiting()
    await coordinator.send("1")
    assert "gesehen" in coordinator.screen
    assert [m for m in await outbox_for(runtime, "driver") if m.kind == "notice"] == []


async def test_non_coordinator_cannot_triage(chat: Chat, runtime: Runtime) -> None:
    await start_report(chat)
    await quick_report(chat)
    await chat.press("Anonym senden")
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None
    await chat.press_id(f"tri:{report.id}:police")
    assert "Nur Koordinatorinnen" in chat.screen or "nur Koordinatorinnen" in chat.screen
    await chat.send(f"/triage {report.reference} police")
    assert "Koordinator" in chat.screen
    async with runtime.sessions() as session:
        fresh = await session.get(Report, report.id)
        refusals = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "refused"))
        ).all()
    assert fresh is not None and fresh.status == "new"
    assert len(refusals) == 2


async def test_report_limit_answers_politely(chat: Chat, runtime: Runtime) -> None:
    runtime.settings.limits.reports_per_hour = 1
    await start_report(chat)
    await quick_report(chat)
    await chat.press("Anonym senden")
    await chat.send("/report")
    assert "schon 1 Meldungen" in chat.screen and "110" in chat.screen


async def test_free_text_starts_a_report(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("Ich habe etwas Verdächtiges gesehen")
    assert "gerade jetzt" in chat.screen


async def test_report_before_onboarding_onboards_then_continues(chat: Chat) -> None:
    await chat.send("/report")
    assert "Sind Sie einverstanden?" in chat.screen
    await chat.press("✅")
    await chat.press("Lkw")
    await chat.press("Köln")
    assert "gerade jetzt" in chat.screen
