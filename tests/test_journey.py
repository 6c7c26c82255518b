"""The report journey as a driver walks it, and the traps a real run found (issue 13).

Inputs are counted the way a person counts them: every message typed, every button
pressed, every location or photo sent, from /report to the reference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import LimitSettings
from bot.core.events import Event, EventKind, Reply
from bot.delivery.outbox import OutboxWorker, Unreachable
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import (
    Acknowledgement,
    DialogueState,
    MediaLink,
    OutboxMessage,
    Report,
    utcnow,
)
from tests.chat import Chat
from tests.test_alerts import add_broadcast
from tests.test_report import outbox_for

REFERENCE = re.compile(r"SP-\d{4}-\d{6}")


class Counted(Chat):
    """A chat that counts the person's inputs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.inputs = 0

    async def send(self, line: str) -> list[Reply]:
        self.inputs += 1
        return await super().send(line)

    async def press(self, label_part: str) -> list[Reply]:
        self.inputs += 1
        return await super().press(label_part)


async def reports(runtime: Runtime) -> list[Report]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(Report).order_by(Report.id))).all())


async def flow_of(runtime: Runtime, name: str) -> str:
    async with runtime.sessions() as session:
        user = await repos.get_user(session, "console", name)
        assert user is not None
        state = await session.scalar(select(DialogueState).where(DialogueState.user_id == user.id))
    return "" if state is None else state.flow


def photo(tmp_path: Path, name: str = "plane.jpg") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\xff\xd8\xff" + name.encode() * 40)
    return path


# -- the quick report ------------------------------------------------------------------------


async def test_quick_report_with_words_place_and_photo_takes_six_inputs(
    runtime: Runtime, tmp_path: Path
) -> None:
    driver = Counted(runtime.core, "driver")
    await driver.onboard()
    driver.inputs = 0
    await driver.send("/report")
    assert "110" in driver.screen  # "happening now? call 110" comes first
    await driver.send("2")  # not happening now
    await driver.send("Zwei Männer schlitzen auf dem Parkplatz Planen auf")
    await driver.send("/location 51.1435 7.0267")
    await driver.send(f"/photo {photo(tmp_path)}")
    await driver.send("1")  # send, contact allowed
    found = REFERENCE.search(driver.screen)
    assert found is not None and driver.inputs == 6
    [report] = await reports(runtime)
    assert report.reference == found[0] and report.category == "cargo_theft"
    assert report.answers["description"].startswith("Zwei Männer schlitzen")
    assert report.answers["place"] == {"lat": 51.1435, "lon": 7.0267}
    assert len(report.answers["media"]) == 1 and report.contact_allowed


@pytest.mark.parametrize(
    ("language", "words", "category"),
    [
        ("Deutsch", "Zwei Männer schleichen um die Lkw", "person"),
        ("English", "someone is cutting tarpaulins on the truck park", "cargo_theft"),
        ("Polski", "ktoś tnie plandekę na parkingu", "cargo_theft"),
    ],
)
async def test_free_text_describing_an_observation_starts_a_report_keeping_the_words(
    runtime: Runtime, language: str, words: str, category: str
) -> None:
    driver = Counted(runtime.core, "driver")
    await driver.onboard(
        language=language, role="🚚", region="Köln" if language == "Deutsch" else "Detmold"
    )
    driver.inputs = 0
    await driver.send(words)  # no command: the words themselves
    assert "110" in driver.screen  # still asked first whether it is happening now
    await driver.send("2")
    await driver.send("/location 51.2 7.1")
    await driver.send("/skip")  # no photo
    await driver.send("2")  # send anonymously
    assert REFERENCE.search(driver.screen) is not None and driver.inputs == 5
    [report] = await reports(runtime)
    assert report.answers["description"] == words and report.category == category


async def test_words_that_ask_for_tips_still_open_the_tips(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("Wie schütze ich meine Planen?")
    assert "Ladung" in chat.replies[-1].title
    await chat.send("Planen")
    assert "Ladung" in chat.replies[-1].title


# -- traps --------------------------------------------------------------------------------------


async def test_a_number_typed_at_a_time_number_or_text_question_is_the_answer(
    chat: Chat, runtime: Runtime
) -> None:
    await chat.onboard()
    await chat.send("/report")
    await chat.send("2")
    await chat.send("Verdächtiger Transporter")
    await chat.send("Rastplatz Siegerland Ost, A45")
    await chat.send("/skip")
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Heute, früher")
    await chat.send("2")  # at "what time today?": 02:00, or a hint if it is not yet two
    assert "Abgebrochen" not in chat.screen and await flow_of(runtime, "driver") == "rep"
    if "Zukunft" in chat.screen:
        await chat.send("0:00")
    await chat.press("Beides")
    await chat.send("3")  # how many people: three
    await chat.press("Das ist alles")
    await chat.press("Das ist alles")
    await chat.press("Ja")  # motorway
    await chat.send("45")  # which motorway: 45
    await chat.send("2")  # direction: 2
    await chat.send("3")  # kilometre: 3 — an answer, never "back"
    assert "Abgebrochen" not in chat.screen
    await chat.send("/summary")
    await chat.press("Anonym senden")
    [report] = await reports(runtime)
    assert report.answers["person_count"] == 3
    assert (report.answers["road"], report.answers["direction"], report.answers["marker"]) == (
        "45",
        "2",
        "3",
    )
    assert report.answers["when_time"] is not None


async def test_cancelling_an_empty_report_needs_no_confirmation(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("/report")
    await chat.send("/cancel")
    assert "nichts gesendet" in chat.screen


async def test_an_alert_mid_report_shows_the_open_question_again(
    chat: Chat, runtime: Runtime
) -> None:
    await chat.onboard()
    await chat.send("/report")
    await chat.send("2")  # now at "what did you see?"
    broadcast_id = await add_broadcast(runtime, texts={"de": "Planenschlitzer auf der A1"})
    async with transaction(runtime.sessions) as session:
        user = await repos.get_user(session, "console", "driver")
        assert user is not None
        await repos.queue_outbox(
            session,
            transport="console",
            chat_id="driver",
            user_id=user.id,
            kind="alert",
            broadcast_id=broadcast_id,
            replies=[Reply("Planenschlitzer auf der A1", title="⚠️ Warnung")],
        )
    shown: list[str] = []
    chat.console.write = shown.append
    await chat.console.show_waiting()
    screen = "\n".join(shown)
    assert "Planenschlitzer" in screen
    assert screen.rindex("Was haben Sie beobachtet?") > screen.index("Planenschlitzer")
    await chat.press_id(f"ack:{broadcast_id}")  # "Understood" under the alert
    assert "Was haben Sie beobachtet?" in chat.screen  # the open question, again
    await chat.send("3")  # answers the open question: cargo theft
    assert "In eigenen Worten" in chat.screen
    async with runtime.sessions() as session:
        acknowledged = await session.scalar(select(Acknowledgement))
    assert acknowledged is not None


async def test_tips_and_the_guide_mid_report_end_with_the_open_question(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("/report")
    await chat.send("2")
    for interruption in ("/tips", "/alarm", "/help", "/myreports"):
        replies = await chat.send(interruption)
        assert "Was haben Sie beobachtet?" in replies[-1].text, interruption
        assert "[3] 🚛 Ladungsdiebstahl" in chat.screen  # with its choices, numbered as before
    await chat.send("3")
    assert "In eigenen Worten" in chat.screen


async def test_a_person_answering_as_fast_as_the_bot_asks_is_never_throttled(
    runtime: Runtime,
) -> None:
    runtime.settings.limits = LimitSettings()  # the defaults a deployment gets
    driver = Chat(runtime.core, "fast")
    answers = [
        "/start", "1", "1", "4", "/report", "2", "Plane aufgeschlitzt, zwei Männer, Transporter",
        "Rastplatz Ohligser Heide", "/skip", "3", "2", "00:00", "3", "2", "1", "3", "2", "1",
        "schwarz, kurz", "dunkle Jacke", "Tattoo am Hals", "Polnisch", "2", "2", "Mercedes",
        "Sprinter", "weiß", "K-AB 123", "1", "Richtung Köln", "1", "A3", "Köln", "km 12",
        "Ohligser Heide", "+49 170 1234567", "1", "/myreports", "/menu",
    ]  # fmt: skip
    throttled = runtime.content.text("de", "core.throttled", emergency="110", seconds=60)[:30]
    for line in answers:
        replies = await driver.send(line)
        screen = driver.screen
        assert replies and throttled not in screen, line
    [report] = await reports(runtime)
    assert report.answers["plate"] == "K-AB 123" and report.answers["phone"] == "+49 170 1234567"


async def test_stale_presses_get_a_toast_and_at_most_the_open_question(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("/report")
    old = chat.find("Nein")
    await chat.press("Nein")
    replies = await chat.press_id(old)  # pressed again, or forged
    assert replies[0].toast and len(replies) == 2
    assert "Was haben Sie beobachtet?" in replies[1].text
    await chat.send("/cancel")
    replies = await chat.press_id(old)  # no dialogue open: the toast alone
    assert len(replies) == 1 and replies[0].toast


async def test_things_that_cannot_be_used_get_one_clear_line_and_the_question(
    chat: Chat, runtime: Runtime, tmp_path: Path
) -> None:
    await chat.onboard()
    await chat.send("/report")
    await chat.send("2")
    await chat.send("Transporter kreist um die Lkw")
    await chat.send("Autohof Hamm")  # now at the photo question
    replies = await chat.send("/photo /nonexistent")  # unreadable: an unsupported event
    assert len(replies) == 1 and "nicht verwenden" in replies[0].lead
    assert "Foto" in replies[0].text
    await chat.send("/skip")
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Überspringen")  # when
    await chat.press("Fahrzeuge")
    await chat.press("Transporter")
    replies = await chat.send(f"/file {photo(tmp_path, 'plan.pdf')}")  # a file at "make?"
    assert len(replies) == 1 and "nicht verwenden" in replies[0].lead
    assert "Marke?" in replies[0].text
    replies = await chat.send("/location 51 7")  # a place at "make?"
    assert len(replies) == 1 and "nicht verwenden" in replies[0].lead
    await chat.send("/cancel")
    await chat.press("Ja, verwerfen")
    replies = await chat.send("/location 51 7")  # outside a report
    assert "nicht verwenden" in replies[0].lead and "/report" in replies[0].lead


@pytest.mark.parametrize("watched", [False, True])
async def test_the_confirmation_tells_the_truth_once(
    chat: Chat, runtime: Runtime, watched: bool
) -> None:
    runtime.settings.bot.reports_watched_around_the_clock = watched
    await chat.onboard(language="English", role="🚚", region="Detmold")
    await chat.send("/report")
    await chat.send("2")
    await chat.send("Someone is circling the truck park")
    await chat.send("Rest area Siegerland")
    await chat.send("/skip")
    await chat.press("Send anonymously")
    text = chat.replies[-1].text
    assert "at once" not in text and "immediately" not in text
    assert ("around the clock" in text) and (("not around" in text) != watched)
    assert text.count("110") == 1


async def test_dates_are_unambiguous_in_every_language(runtime: Runtime) -> None:
    for language, name in (("English", "en"), ("Deutsch", "de"), ("Polski", "pl")):
        chat = Chat(runtime.core, f"d_{name}")
        await chat.onboard(
            language=language, role="🚚", region="Detmold" if name != "de" else "Köln"
        )
        await chat.send("/report")
        await chat.send("2")
        await chat.send("Suspicious van")
        await chat.send("A1")
        await chat.send("/skip")
        await chat.send("2")
        await chat.send("/myreports")
        # "5 Nov 2026, 09:10" (never "11/5/26, 9:10 AM")
        assert re.search(r"\d{1,2}\.? \w{3,4}\.? \d{4}, \d\d:\d\d", chat.screen), chat.screen
        assert not re.search(r"\d{1,2}/\d{1,2}/\d{2}", chat.screen)
        assert " AM" not in chat.screen and " PM" not in chat.screen


async def test_polish_summary_names_the_files_once(chat: Chat, tmp_path: Path) -> None:
    await chat.onboard(language="Polski", role="🚚", region="Detmold")
    await chat.send("/report")
    await chat.send("2")
    await chat.send("Podejrzany bus")
    await chat.send("Parking A2")
    await chat.send(f"/photo {photo(tmp_path)}")
    assert "Pliki: 1 plik(i)" in chat.screen and "Pliki: Pliki" not in chat.screen


async def test_a_guide_opened_by_deep_link_offers_the_other_languages(chat: Chat) -> None:
    await chat.send("/start alarm")
    assert "In Gefahr" in chat.screen
    await chat.press("English")
    assert "In danger" in chat.screen and "Deutsch" in " ".join(chat.labels)


async def test_each_role_has_its_own_menu(runtime: Runtime) -> None:
    def first(chat: Chat) -> str:
        return chat.labels[0]

    truck, taxi = Chat(runtime.core, "truck"), Chat(runtime.core, "taxi")
    await truck.onboard(role="Lkw")
    await taxi.onboard(role="Taxi")
    assert first(truck) == "📝 Verdächtiges melden" and "🚨" not in first(truck)
    assert first(taxi).startswith("🚨")
    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.send("/menu")
    assert coordinator.labels[:3] == [
        "📥 Offene Meldungen",
        "📢 Warnung senden",
        "📊 Warnungen und Quittungen",
    ]


async def test_a_coordinator_is_not_asked_for_a_job_again_after_each_command(
    runtime: Runtime,
) -> None:
    """Coordinators triage without onboarding: one they left open is not asked again after
    their commands; a driver's is (nothing else works before it)."""
    role_question = runtime.content.text("de", "onboarding.role")
    coordinator, driver = Chat(runtime.core, "leitstelle"), Chat(runtime.core, "driver")
    for person in (coordinator, driver):
        await person.send("/start")
        await person.press("✅")
        assert role_question in person.screen
    truck = coordinator.find("Lkw")
    await coordinator.send("/reports")
    assert "keine offenen Meldungen" in coordinator.screen
    assert role_question not in coordinator.screen
    await coordinator.press_id(truck)  # the question's buttons, further up, still work
    assert runtime.content.text("de", "onboarding.region") in coordinator.screen
    await driver.send("/tips")
    assert role_question in driver.screen


async def test_the_small_answers_of_the_desk(runtime: Runtime) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/settings")
    assert "📋 Zurück zum Menü" in driver.labels
    await driver.send("/back")
    assert "keine Frage offen" in driver.screen
    await driver.send("/skip")
    assert "keine Frage offen" in driver.screen
    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.send("/triage SP-2026-999999 police")
    assert "SP-2026-999999 gibt es nicht" in coordinator.screen
    await coordinator.send("/broadcast_status 99")
    assert "#99 gibt es nicht" in coordinator.screen
    await coordinator.send("/reports")
    assert "keine offenen Meldungen" in coordinator.screen
    await coordinator.send("/broadcast")
    for line in ("Achtung A1", "/skip", "/skip", "1", "1", "/done", "/done", "/done", "12", "1"):
        await coordinator.send(line)
    assert "Rollen: alle" in coordinator.screen and "Regionen: alle" in coordinator.screen


def test_the_first_page_of_the_silent_alarm_guide_is_what_a_driver_needs_now(
    runtime: Runtime,
) -> None:
    needed = {
        "de": ("auslösen", "110", "Keine Gegenwehr", "Polizei"),
        "en": ("Trigger", "110", "Do not resist", "police"),
        "pl": ("Włącz", "110", "Nie stawiaj oporu", "policja"),
    }
    for language, words in needed.items():
        page = runtime.content.topic(language, "silent_alarm_taxi").cards[0]
        assert all(word in page for word in words), (language, page)


# -- reports reach the coordinators --------------------------------------------------------------


async def report_from(chat: Chat, contact: bool = False) -> str:
    await chat.send("/report")
    await chat.send("2")
    await chat.send("Zwei Männer an der Plane")
    await chat.send("Rastplatz Ohligser Heide")
    await chat.send("/skip")
    await chat.press("Rückfragen erlaubt" if contact else "Anonym senden")
    found = REFERENCE.search(chat.screen)
    assert found is not None
    return found[0]


async def test_a_telegram_deployment_queues_reports_for_its_coordinators_only(
    runtime: Runtime,
) -> None:
    settings = runtime.settings
    settings.telegram.enabled, settings.telegram.coordinators = True, [9001, 9002]
    settings.console.enabled = None  # the terminal is not a transport of this deployment
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await report_from(driver)
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    assert sorted((row.transport, row.chat_id) for row in rows if row.kind == "report") == [
        ("telegram", "9001"),
        ("telegram", "9002"),
    ]
    assert [row for row in rows if row.transport == "console"] == []


async def test_reports_reach_coordinators_added_by_an_admin(runtime: Runtime) -> None:
    admin = Chat(runtime.core, "leitstelle")
    await admin.send("/coordinators add console mara")
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await report_from(driver)
    assert len(await outbox_for(runtime, "mara")) == 1
    assert len(await outbox_for(runtime, "leitstelle")) == 1


class Refusing:
    """A sender whose coordinators' chat refuses everything (the bot was removed)."""

    transport = "console"

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        raise Unreachable("Forbidden: bot was kicked from the group chat")


async def test_a_report_that_cannot_be_delivered_is_logged_retried_and_the_admins_told(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.settings.console.coordinators = ["koordination"]
    runtime.settings.console.admins = ["admin"]
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    reference = await report_from(driver)
    worker = OutboxWorker(runtime.sessions, Refusing(), on_undeliverable=runtime.core.undeliverable)
    with caplog.at_level(logging.INFO):
        await worker.run_once()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("koordination" in w and "not delivered" in w for w in warnings)
    assert not any("Ohligser" in r.getMessage() for r in caplog.records)  # no content
    [row] = await outbox_for(runtime, "koordination")
    assert row.status == "queued" and row.attempts == 1  # tried again later
    [notice] = await outbox_for(runtime, "admin")
    assert (
        "koordination" in notice.payload[0]["text"] and reference not in notice.payload[0]["text"]
    )
    async with transaction(runtime.sessions) as session:  # due again: a second failure
        stored = await session.get(OutboxMessage, row.id)
        assert stored is not None
        stored.next_attempt_at = utcnow()
    await worker.run_once()
    assert len(await outbox_for(runtime, "admin")) == 1  # told once a day, not per attempt


async def test_coordinators_see_how_to_reach_a_reporter_only_with_consent_and_can_reply(
    runtime: Runtime,
) -> None:
    open_, hidden = Chat(runtime.core, "jan"), Chat(runtime.core, "eva")
    await open_.onboard()
    await hidden.onboard()
    allowed = await report_from(open_, contact=True)
    anonymous = await report_from(hidden)
    views = {
        row.payload[0]["title"].split(" · ")[0]: row.payload[0]["text"]
        for row in await outbox_for(runtime, "leitstelle")
    }
    assert "Kontakt erlaubt: jan" in views[allowed]
    assert "eva" not in views[anonymous] and "anonym" in views[anonymous]

    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.send(f"/reply {allowed} Danke! Wo genau stand der Transporter?")
    assert "unterwegs" in coordinator.screen
    [message] = [m for m in await outbox_for(runtime, "jan") if m.kind == "notice"]
    assert "Wo genau stand der Transporter?" in message.payload[0]["text"]
    assert allowed in message.payload[0]["title"]
    await coordinator.send(f"/reply {anonymous} Hallo?")
    assert "nicht erlaubt" in coordinator.screen
    assert [m for m in await outbox_for(runtime, "eva") if m.kind == "notice"] == []

    await coordinator.send("/reports")
    await coordinator.press(allowed)
    await coordinator.press("Meldende Person antworten")  # the button under the report
    await coordinator.send("Bitte rufen Sie uns an.")
    notices = [m for m in await outbox_for(runtime, "jan") if m.kind == "notice"]
    assert len(notices) == 2 and "rufen Sie uns an" in notices[1].payload[0]["text"]


async def test_details_added_after_sending_reach_the_coordinators_as_an_update(
    runtime: Runtime,
) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    reference = await report_from(driver, contact=True)
    await driver.press(f"Einzelheiten zu {reference}")
    await driver.press("Gerade eben")
    await driver.press("Fahrzeuge")
    await driver.press("Transporter")
    await driver.send("VW")
    await driver.press("Das ist alles")
    await driver.send("/summary")
    await driver.press("Ergänzungen senden")
    assert reference in driver.screen
    [_first, update] = await outbox_for(runtime, "leitstelle")
    assert reference in update.payload[0]["title"] and "VW" in update.payload[0]["text"]
    [report] = await reports(runtime)
    assert report.answers["make"] == "VW" and report.answers["description"]
    await driver.send("/myreports")
    assert f"Einzelheiten zu {reference}" in " ".join(driver.labels)


async def test_a_draft_left_for_thirty_minutes_gets_one_reminder(runtime: Runtime) -> None:
    from bot.scheduler import BotScheduler
    from handlers.report import remind_reports

    assert runtime.settings.scheduler.report_reminder_minutes == 30
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/report")
    await driver.send("2")
    scheduler = BotScheduler(runtime)
    BotScheduler.current = scheduler
    try:
        assert await remind_reports(runtime, now=utcnow() + timedelta(minutes=20)) == 0
        assert await remind_reports(runtime, now=utcnow() + timedelta(minutes=31)) == 1
        assert await remind_reports(runtime, now=utcnow() + timedelta(minutes=90)) == 0
    finally:
        await scheduler.shutdown()
    [reminder] = [m for m in await outbox_for(runtime, "driver") if m.kind == "notice"]
    assert "noch nicht abgeschickt" in reminder.payload[0]["text"]


async def test_a_voice_note_may_stand_in_for_the_words(runtime: Runtime, tmp_path: Path) -> None:
    voice = tmp_path / "note.ogg"
    voice.write_bytes(b"OggS" + b"\x00" * 200)
    driver = Counted(runtime.core, "driver")
    await driver.onboard()
    driver.inputs = 0
    await driver.send("/report")
    await driver.send("2")
    await driver.send(f"/voice {voice}")  # at "what did you see?"
    assert "Wo war das?" in driver.screen
    await driver.send("/location 51.1 7.1")
    await driver.send(f"/photo {photo(tmp_path)}")
    assert "Sprachnachricht" in driver.screen  # the summary names it
    await driver.send("2")
    assert REFERENCE.search(driver.screen) is not None and driver.inputs == 6
    [report] = await reports(runtime)
    assert report.answers["description"]["voice"]["kind"] == "voice"
    coordinator = await outbox_for(runtime, "leitstelle")
    kinds = [a["kind"] for a in coordinator[0].payload[0]["attachments"]]
    assert sorted(kinds) == ["photo", "voice"]  # the coordinators get the voice note too


async def test_personal_answers_only_in_a_direct_chat(runtime: Runtime) -> None:
    """In a group or a room with others, nothing personal is answered there."""
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await report_from(driver, contact=True)

    async def in_the_group(line: str) -> str:
        command, _, args = line[1:].partition(" ")
        event = Event(
            "console", "lkw-gruppe", "driver", EventKind.COMMAND, text=line, command=command,
            args=args, is_group=True,
        )  # fmt: skip
        return "\n".join(f"{r.lead}\n{r.title}\n{r.text}" for r in await runtime.core.handle(event))

    for line in ("/mydata", "/myreports", "/delete_me", "/report", "/settings", "/alerts"):
        answer = await in_the_group(line)
        assert "direkten Chat" in answer, line
        assert "SP-" not in answer and "Ohligser" not in answer, line
    stranger = Event(
        "console", "lkw-gruppe", "stranger", EventKind.COMMAND, text="/report", command="report",
        is_group=True,
    )  # fmt: skip
    [answer] = await runtime.core.handle(stranger)  # no onboarding in front of others
    assert "direkten Chat" in answer.text and not answer.choices
    assert "/report" in await in_the_group("/help")  # what is not personal is answered
    async with runtime.sessions() as session:
        exports = (await session.scalars(select(MediaLink))).all()
    assert [link for link in exports if link.report_id is None] == []  # no export was made
