"""Personal data lives exactly as long as its purpose.

One test per row of the README's table "What is stored, for how long", and the scan:
plant unique values through the chat, run the purge jobs with the clock moved forward,
erase the person, then read every table, every file of the media store and every log
record — nothing planted may remain outside what the table keeps (an anonymised report).

Planted values are ASCII: SQLite stores JSON with non-ASCII characters escaped, and the
scan compares bytes.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select, text, update

from bot import logs
from bot.config import Settings
from bot.core.events import AttachmentKind
from bot.routine import purge, purge_exports, purge_media
from bot.runtime import Runtime
from bot.scheduler import BotScheduler
from bot.storage import db, repos, retention
from bot.storage.models import (
    AlertTemplate,
    AuditEntry,
    Base,
    Broadcast,
    ConversationEntry,
    DialogueState,
    Media,
    MediaLink,
    OutboxMessage,
    Report,
    User,
    utcnow,
)
from tests.chat import Chat
from tests.peers.botapi import BotApiServer
from tests.test_alerts import add_broadcast
from tests.test_telegram import (
    OTHER,
    TOKEN,
    USER,
    Harness,
    eventually,
    outbox_row,
    queue_notice,
)

REPORTER = "quaxel-7f3a"  # the person's id on the platform (their terminal name)
PLANTED = {
    "platform id": REPORTER,
    "name": "Quaxelmeier",
    "phone": "0171 5550199",
    "plate": "K-QX 9173",
    "latitude": "51.14357",
    "draft place": "Quaxelweg 12",
    "own photo": "quaxel's own photo 7f3a",
    "draft photo": "quaxel's draft photo 7f3a",
}
# A forwarded photo is byte for byte the same for everyone who forwards it.
SHARED_PHOTO = b"\xff\xd8\xff a forwarded photo, the same bytes for everyone"
# What an anonymised report keeps (README): what was observed, not who observed it.
KEPT_WHEN_ANONYMISED = {
    "name": {"reports.answers"},  # typed into the description: part of what was observed
    "plate": {"reports.answers"},
    "latitude": {"reports.answers"},
    "own photo": {"media store"},
}


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    peer = BotApiServer()
    peer.add_bot(TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def scheduler(runtime: Runtime) -> AsyncIterator[BotScheduler]:
    """The scheduler as the bot runs it (the jobs are called directly, clock moved)."""
    running = BotScheduler(runtime)
    await running.start(with_standard_jobs=False)
    yield running
    await running.shutdown()


def photo(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def jpeg(label: str) -> bytes:
    return b"\xff\xd8\xff " + label.encode()


async def report_everything(chat: Chat, tmp_path: Path) -> None:
    """A report with a place, a plate, a name and number, two photos, contact allowed."""
    await chat.onboard()
    await chat.send("/report")
    await chat.press("Nein")
    await chat.send(f"Zeuge Zbigniew {PLANTED['name']} sah einen Transporter")  # own words
    await chat.share_location(51.14357, 7.02671)
    await chat.send(f"/photo {photo(tmp_path, 'own.jpg', jpeg(PLANTED['own photo']))}")
    await chat.send(f"/photo {photo(tmp_path, 'shared.jpg', SHARED_PHOTO)}")
    await chat.press("Einzelheiten ergänzen")
    await chat.press("Gerade eben")
    await chat.press("Fahrzeuge")
    await chat.press("Transporter")
    await chat.send("Volkswagen")
    await chat.press("Überspringen")  # model
    await chat.press("Überspringen")  # colour
    await chat.send(PLANTED["plate"])
    await chat.press("Das ist alles")
    await chat.press("Überspringen")  # motorway
    await chat.send(PLANTED["phone"])  # a phone number for questions
    await chat.press("Rückfragen erlaubt")
    assert "angekommen" in chat.screen


async def report_with_photo(chat: Chat, *paths: Path) -> None:
    """The fewest taps, with photos."""
    await chat.onboard()
    await chat.send("/report")
    await chat.press("Nein")
    await chat.press("Sonstiges")
    await chat.press("Überspringen")  # own words
    await chat.send("Parkplatz")
    for path in paths:
        await chat.send(f"/photo {path}")
    await chat.press("Anonym senden")
    assert "angekommen" in chat.screen


async def begin_and_leave_a_report(chat: Chat, tmp_path: Path) -> None:
    """A report begun — a place typed, a photo sent — and never sent."""
    await chat.send("/report")
    await chat.press("Nein")
    await chat.press("Sonstiges")
    await chat.press("Überspringen")  # own words
    await chat.send(PLANTED["draft place"])
    await chat.send(f"/photo {photo(tmp_path, 'draft.jpg', jpeg(PLANTED['draft photo']))}")
    assert "bitte prüfen" in chat.screen.lower()  # at the summary, never sent


async def erase(chat: Chat) -> None:
    await chat.send("/delete_me")
    await chat.press("Ja, alles löschen")
    assert "Gelöscht" in chat.screen


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str).encode()
    return str(value).encode()


async def scan(runtime: Runtime, records: Sequence[logging.LogRecord] = ()) -> dict[str, set[str]]:
    """Where each planted value is found: "table.column", "media store" or "log"."""
    needles = {key: value.encode() for key, value in PLANTED.items()}
    found: dict[str, set[str]] = defaultdict(set)
    async with runtime.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        for table in tables:  # the job store's table (apscheduler_jobs) too
            rows = await connection.execute(text(f'SELECT * FROM "{table}"'))
            for row in rows.mappings():
                for column, value in row.items():
                    blob = as_bytes(value)
                    found_here = [key for key, needle in needles.items() if needle in blob]
                    for key in found_here:
                        found[key].add(f"{table}.{column}")
    store = runtime.settings.media_dir
    for path in store.rglob("*") if store.exists() else []:
        if path.is_file():
            data = path.read_bytes()
            for key, needle in needles.items():
                if needle in data or needle in path.name.encode():
                    found[key].add("media store")
    for record in records:
        written = record.getMessage() + (record.exc_text or "")
        for key, value in PLANTED.items():
            if value in written:
                found[key].add("log")
    return dict(found)


def leftovers(found: dict[str, set[str]], mode: str) -> dict[str, set[str]]:
    """What was found beyond what the README's table keeps in this erasure mode."""
    kept = KEPT_WHEN_ANONYMISED if mode == "anonymise" else {}
    extra = {key: places - kept.get(key, set()) for key, places in found.items()}
    return {key: places for key, places in extra.items() if places}


async def count(runtime: Runtime, model: Any, *where: Any) -> int:
    async with runtime.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(model).where(*where))
    return int(total or 0)


# -- the scan -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["anonymise", "erase"])
async def test_nothing_planted_remains_outside_what_the_table_keeps(
    runtime: Runtime,
    scheduler: BotScheduler,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    mode: str,
) -> None:
    runtime.settings.retention.on_erasure = mode  # type: ignore[assignment]
    # A second coordinator who never opens the chat: a report's copy waits for them.
    runtime.settings.console.coordinators = ["leitstelle", "nachtschicht"]
    logs.hold_libraries(library_payloads=False)  # as `sicherheitsbot` sets them up
    reporter, witness = Chat(runtime.core, REPORTER), Chat(runtime.core, "witness")
    leitstelle = Chat(runtime.core, "leitstelle")
    with caplog.at_level(logging.DEBUG):
        await report_everything(reporter, tmp_path)
        await report_with_photo(witness, photo(tmp_path, "forwarded.jpg", SHARED_PHOTO))
        await leitstelle.console.show_waiting()  # delivered to leitstelle, not nachtschicht
        async with runtime.sessions() as session:
            own = await session.scalar(select(Report).where(Report.contact_allowed.is_(True)))
        assert own is not None
        await leitstelle.send(f"/triage {own.reference} police")  # a notice to the reporter
        await reporter.send("/mydata")
        await reporter.send(f"Meine Nummer ist {PLANTED['phone']}")
        await begin_and_leave_a_report(reporter, tmp_path)
        await scheduler.schedule_broadcast(
            await add_broadcast(runtime), utcnow() + timedelta(days=1)
        )
        before = await scan(runtime)
        assert set(before) == set(PLANTED), before  # every value did get stored

        # The purge jobs, the clock moved forward: a day for the rows, two for the files,
        # the export's minutes for the export.
        export_minutes = runtime.settings.retention.export_minutes
        assert (
            await purge_exports(runtime, now=utcnow() + timedelta(minutes=export_minutes + 1)) == 1
        )
        await purge(runtime, now=utcnow() + timedelta(days=1))
        await purge_media(runtime, now=utcnow() + timedelta(days=2))
        await erase(reporter)
    assert leftovers(await scan(runtime, caplog.records), mode) == {}

    # The witness's report keeps the forwarded photo the reporter sent too.
    async with runtime.sessions() as session:
        kept = (await session.scalars(select(Report))).all()
    witness_report = [r for r in kept if r.answers["media"][0]["file_name"] == "forwarded.jpg"]
    [shared] = witness_report[0].answers["media"]
    assert runtime.core.media.read(shared["sha256"]) == SHARED_PHOTO
    assert len(kept) == (2 if mode == "anonymise" else 1)


# -- one test per row of the table ----------------------------------------------------------


async def test_users_who_never_agreed_go_after_unconsented_days(
    runtime: Runtime, scheduler: BotScheduler
) -> None:
    passer_by, member = Chat(runtime.core, "passer-by"), Chat(runtime.core, "member")
    await passer_by.send("/start")  # language asked, never answered: id and language only
    await member.onboard()
    await Chat(runtime.core, "leitstelle").send("/menu")  # a coordinator: staff, no consent
    days = runtime.settings.retention.unconsented_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    assert await count(runtime, User) == 3
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    async with runtime.sessions() as session:
        left = set((await session.scalars(select(User.platform_id))).all())
    assert left == {"member", "leitstelle"}
    assert await count(runtime, DialogueState, DialogueState.chat_id == "passer-by") == 0


@pytest.mark.parametrize("mode", ["anonymise", "erase"])
async def test_who_blocked_the_bot_is_erased_after_inactive_user_days(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path, mode: str
) -> None:
    runtime.settings.retention.on_erasure = mode  # type: ignore[assignment]
    gone = Chat(runtime.core, REPORTER)
    await report_everything(gone, tmp_path)
    async with runtime.sessions() as session, session.begin():
        # What the outbox worker records when the platform says the bot was blocked.
        await session.execute(update(User).values(active=False))
    days = runtime.settings.retention.inactive_user_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    assert await count(runtime, User) == 1
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    assert await count(runtime, User) == 0
    assert leftovers(await scan(runtime), mode) == {}


async def test_a_report_left_half_done_goes_after_draft_days_with_its_photo(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path
) -> None:
    chat = Chat(runtime.core, REPORTER)
    await chat.onboard()
    await begin_and_leave_a_report(chat, tmp_path)
    [draft_photo] = [p for p in runtime.settings.media_dir.rglob("*") if p.is_file()]
    days = runtime.settings.retention.draft_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    await purge_media(runtime, now=utcnow() + timedelta(days=days - 1))  # a draft holds its photo
    assert draft_photo.exists()
    assert await count(runtime, DialogueState, DialogueState.flow == "rep") == 1
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    assert await count(runtime, DialogueState) == 0
    assert not draft_photo.exists()
    found = await scan(runtime)
    # What was typed stays in the conversation log for its own days, nowhere else.
    assert found["draft place"] == {"conversation_log.text"} and "draft photo" not in found
    await chat.send("/menu")  # the person simply starts again
    assert "Was möchten Sie tun?" in chat.screen


async def test_closed_reports_go_after_closed_report_days_open_ones_stay(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path
) -> None:
    closed, still_open = Chat(runtime.core, "closed"), Chat(runtime.core, "open")
    own = photo(tmp_path, "a.jpg", jpeg("closed report's photo"))
    shared = photo(tmp_path, "b.jpg", SHARED_PHOTO)
    await report_with_photo(closed, own, shared)
    await report_with_photo(still_open, shared)  # the same forwarded photo
    leitstelle = Chat(runtime.core, "leitstelle")
    async with runtime.sessions() as session:
        first = await session.scalar(select(Report).order_by(Report.id))
    assert first is not None
    await leitstelle.send(f"/triage {first.reference} closed")
    await leitstelle.press("Überspringen")  # no note
    async with runtime.sessions() as session:
        report = await session.get(Report, first.id)
    assert report is not None and report.status == "closed"
    days = runtime.settings.retention.closed_report_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    assert await count(runtime, Report) == 2
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    async with runtime.sessions() as session:
        left = (await session.scalars(select(Report))).all()
    assert [r.status for r in left] == ["new"]
    names = {p.read_bytes() for p in runtime.settings.media_dir.rglob("*") if p.is_file()}
    assert names == {SHARED_PHOTO}  # the closed report's own photo went, the shared stayed


@pytest.mark.parametrize("mode", ["anonymise", "erase"])
async def test_erasing_one_reporter_keeps_a_photo_another_report_holds(
    runtime: Runtime, tmp_path: Path, mode: str
) -> None:
    runtime.settings.retention.on_erasure = mode  # type: ignore[assignment]
    first, second = Chat(runtime.core, "first"), Chat(runtime.core, "second")
    await report_with_photo(first, photo(tmp_path, "forwarded.jpg", SHARED_PHOTO))
    await report_with_photo(second, photo(tmp_path, "forwarded-too.jpg", SHARED_PHOTO))
    await erase(first)
    async with runtime.sessions() as session:
        [kept] = (await session.scalars(select(Report).where(Report.user_id.is_not(None)))).all()
    sha = kept.answers["media"][0]["sha256"]
    assert runtime.core.media.read(sha) == SHARED_PHOTO
    assert await count(runtime, Media, Media.sha256 == sha) == 1
    await erase(second)
    # The last holder: gone with an erased report, kept with an anonymised one.
    assert runtime.core.media.path_for(sha).exists() is (mode == "anonymise")


async def test_files_held_past_media_days_go_and_files_no_row_names_go_after_a_day(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path
) -> None:
    chat = Chat(runtime.core, "driver")
    await report_with_photo(chat, photo(tmp_path, "evidence.jpg", jpeg("evidence")))
    [evidence] = [p for p in runtime.settings.media_dir.rglob("*") if p.is_file()]
    # Downloaded for an event that never completed (a crash, a refused report): no row.
    stray = await runtime.core.media.save(jpeg("stray download"), AttachmentKind.PHOTO)
    stray_path = runtime.core.media.path_for(stray.sha256)
    assert await purge_media(runtime, now=utcnow() + retention.ORPHAN_GRACE / 2) == 0
    assert stray_path.exists()
    assert await purge_media(runtime, now=utcnow() + retention.ORPHAN_GRACE * 2) == 1
    assert not stray_path.exists() and evidence.exists()
    days = runtime.settings.retention.media_days
    assert await purge_media(runtime, now=utcnow() + timedelta(days=days + 1)) == 1
    assert not evidence.exists()
    assert await count(runtime, Media) == 0 and await count(runtime, MediaLink) == 0


async def test_delivered_messages_keep_no_text_and_undelivered_ones_expire(
    runtime: Runtime, scheduler: BotScheduler
) -> None:
    runtime.settings.console.coordinators = ["leitstelle", "nachtschicht"]
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/report")
    await driver.press("Nein")
    await driver.press("Sonstiges")
    await driver.press("Überspringen")  # own words
    await driver.send(f"Parkplatz, Kennzeichen {PLANTED['plate']}")
    await driver.press("Überspringen")  # files
    await driver.press("Anonym senden")
    await Chat(runtime.core, "leitstelle").console.show_waiting()
    async with runtime.sessions() as session:
        rows = {r.chat_id: r for r in (await session.scalars(select(OutboxMessage))).all()}
    assert rows["leitstelle"].status == "sent" and rows["leitstelle"].payload == []
    assert PLANTED["plate"] in json.dumps(rows["nachtschicht"].payload)  # still waiting
    undelivered = runtime.settings.retention.undelivered_days
    await purge(runtime, now=utcnow() + timedelta(days=undelivered - 1))
    assert await count(runtime, OutboxMessage, OutboxMessage.status == "queued") == 1
    await purge(runtime, now=utcnow() + timedelta(days=undelivered + 1))
    async with runtime.sessions() as session:
        waiting = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.chat_id == "nachtschicht")
        )
    assert waiting is not None and waiting.status == "expired" and waiting.payload == []
    # The report keeps the plate (and the log, for its days); no outbox row does.
    assert (await scan(runtime))["plate"] == {"reports.answers", "conversation_log.text"}
    records = runtime.settings.retention.delivery_days
    await purge(runtime, now=utcnow() + timedelta(days=records + 1))
    assert await count(runtime, OutboxMessage) == 0


async def queue_person(runtime: Runtime, telegram_id: int) -> int:
    """A Telegram user known to the bot: their users row id."""
    async with runtime.sessions() as session, session.begin():
        person = await repos.get_or_create_user(
            session, "telegram", str(telegram_id), str(telegram_id), "de"
        )
        return person.id


async def test_the_outbox_worker_keeps_no_text_of_what_it_sent_or_gave_up(
    runtime: Runtime, server: BotApiServer
) -> None:
    harness = Harness(runtime, server)
    await harness.start()
    try:
        server.add_user(USER)
        server.add_user(OTHER)
        server.block(OTHER)
        sent = await queue_notice(runtime, USER, f"Kennzeichen {PLANTED['plate']}", None)
        other = await queue_person(runtime, OTHER)  # a person who blocked the bot
        refused = await queue_notice(runtime, OTHER, f"Tel. {PLANTED['phone']}", other)
        notice = await server.wait_for_message(USER, timeout=30)  # a bound, not a timing
        assert PLANTED["plate"] in (notice.plain_text or "")

        async def done() -> bool:
            rows = [await outbox_row(runtime, sent), await outbox_row(runtime, refused)]
            return [row.status for row in rows] == ["sent", "failed"]

        await eventually(done, within=30)
    finally:
        await harness.stop()
    for row_id in (sent, refused):
        assert (await outbox_row(runtime, row_id)).payload == []
    assert await scan(runtime) == {}


@pytest.mark.parametrize("mode", ["anonymise", "erase"])
async def test_erasure_reaches_the_copy_of_a_report_sent_to_the_coordinators(
    runtime: Runtime, tmp_path: Path, mode: str
) -> None:
    runtime.settings.retention.on_erasure = mode  # type: ignore[assignment]
    reporter = Chat(runtime.core, REPORTER)
    await report_everything(reporter, tmp_path)
    async with runtime.sessions() as session:
        [copy] = (await session.scalars(select(OutboxMessage))).all()
    assert copy.chat_id == "leitstelle" and copy.user_id is None
    assert PLANTED["plate"] in json.dumps(copy.payload)
    await erase(reporter)
    assert await count(runtime, OutboxMessage) == 0


async def test_conversation_log_goes_after_conversation_days(
    runtime: Runtime, scheduler: BotScheduler
) -> None:
    chat = Chat(runtime.core, "driver")
    await chat.onboard()
    await chat.send(f"Mein Kennzeichen ist {PLANTED['plate']}")
    assert await count(runtime, ConversationEntry, ConversationEntry.text.contains("K-QX")) == 1
    days = runtime.settings.retention.conversation_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    assert await count(runtime, ConversationEntry) > 0
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    assert await count(runtime, ConversationEntry) == 0


async def test_audit_log_loses_the_erased_person_and_goes_after_audit_days(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path
) -> None:
    reporter = Chat(runtime.core, REPORTER)
    await report_with_photo(reporter, photo(tmp_path, "p.jpg", jpeg("p")))
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == REPORTER))
    assert user is not None
    assert await count(runtime, AuditEntry, AuditEntry.actor_id == user.id) >= 1
    await erase(reporter)
    assert await count(runtime, AuditEntry, AuditEntry.actor_id == user.id) == 0
    assert await count(runtime, AuditEntry, AuditEntry.action == "report_submitted") == 1
    days = runtime.settings.retention.audit_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    assert await count(runtime, AuditEntry, AuditEntry.action == "report_submitted") == 1
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    assert await count(runtime, AuditEntry, AuditEntry.action != "purge") == 0


async def test_an_export_is_deleted_after_its_minutes_or_at_erasure(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path
) -> None:
    reporter = Chat(runtime.core, REPORTER)
    await report_everything(reporter, tmp_path)
    await reporter.send("/mydata")
    [first] = reporter.replies[0].attachments
    export = runtime.core.media.path_for(first.sha256)
    assert PLANTED["plate"].encode() in export.read_bytes()
    minutes = runtime.settings.retention.export_minutes
    assert await purge_exports(runtime, now=utcnow() + timedelta(minutes=minutes - 1)) == 0
    assert export.exists()
    assert await purge_exports(runtime, now=utcnow() + timedelta(minutes=minutes + 1)) == 1
    assert not export.exists()
    await reporter.send("/mydata")  # again, and erased at once
    [second] = reporter.replies[0].attachments
    assert runtime.core.media.path_for(second.sha256).exists()
    await erase(reporter)
    assert not runtime.core.media.path_for(second.sha256).exists()


async def test_alerts_go_delivery_days_after_they_expired_without_their_author(
    runtime: Runtime, scheduler: BotScheduler
) -> None:
    leitstelle = Chat(runtime.core, "leitstelle")
    await leitstelle.send("/menu")
    async with runtime.sessions() as session:
        author = await session.scalar(select(User.id).where(User.platform_id == "leitstelle"))
    alert = await add_broadcast(runtime, created_by=author, texts={"de": "Achtung"})
    days = runtime.settings.retention.delivery_days
    await purge(runtime, now=utcnow() + timedelta(days=days - 1))
    assert await count(runtime, Broadcast) == 1
    await erase(leitstelle)
    async with runtime.sessions() as session:
        kept = await session.get(Broadcast, alert)
    assert kept is not None and kept.created_by is None
    await purge(runtime, now=utcnow() + timedelta(days=days + 1))
    assert await count(runtime, Broadcast) == 0


async def test_alert_templates_stay_without_their_author(runtime: Runtime) -> None:
    leitstelle = Chat(runtime.core, "leitstelle")
    await leitstelle.send("/alert_template")
    await leitstelle.send("Planenschlitzer A1")
    await leitstelle.press("Ladungsdiebstahl")
    await leitstelle.send("Serie aufgeschlitzter Planen auf Rastplätzen der A1.")
    await leitstelle.press("Überspringen")  # English
    await leitstelle.press("Überspringen")  # Polish
    assert "Vorlage „Planenschlitzer A1“ ist gespeichert." in leitstelle.screen
    await erase(leitstelle)
    async with runtime.sessions() as session:
        kept = (await session.scalars(select(AlertTemplate))).all()
    assert [(t.name, t.updated_by) for t in kept] == [("Planenschlitzer A1", None)]


async def test_the_job_store_holds_ids_not_texts(runtime: Runtime, scheduler: BotScheduler) -> None:
    alert = await add_broadcast(runtime, texts={"de": f"Gesucht: {PLANTED['plate']}"})
    await scheduler.schedule_broadcast(alert, utcnow() + timedelta(days=1))
    async with runtime.engine.connect() as connection:
        jobs = (await connection.execute(text("SELECT id, job_state FROM apscheduler_jobs"))).all()
    assert [job_id for job_id, _ in jobs] == [f"broadcast:{alert}"]
    assert PLANTED["plate"].encode() not in as_bytes(jobs[0][1])
    assert await scan(runtime) == {"plate": {"broadcasts.texts"}}


# -- the schema -------------------------------------------------------------------------------


async def test_the_migrations_make_the_schema_the_models_describe(runtime: Runtime) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: (kind, name) != ("table", "apscheduler_jobs"),
            },
        )
        return list(compare_metadata(context, Base.metadata))

    async with runtime.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_reports_stored_before_the_upgrade_hold_their_files(
    settings: Settings, tmp_path: Path
) -> None:
    url = settings.database_url
    await db.upgrade(url, "0003")
    answers = {"media": [{"sha256": "a" * 64, "kind": "photo", "size": 3}], "category": "other"}
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            insert(Report.__table__),
            [{"reference": "SP-2026-000001", "transport": "console", "category": "other",
              "status": "new", "answers": answers, "contact_allowed": False, "status_note": "",
              "created_at": utcnow(), "updated_at": utcnow()}],
        )  # fmt: skip
    await db.upgrade(url)
    async with engine.connect() as connection:
        links = (await connection.execute(select(MediaLink.sha256, MediaLink.report_id))).all()
    await engine.dispose()
    assert [(sha, report) for sha, report in links] == [("a" * 64, 1)]


async def test_reports_stored_before_the_upgrade_keep_their_reporters_region(
    settings: Settings,
) -> None:
    url = settings.database_url
    await db.upgrade(url, "0007")
    engine = db.create_engine(url)
    now = utcnow()
    async with engine.begin() as connection:
        await connection.execute(
            insert(User.__table__),
            [
                {
                    "id": 7,
                    "transport": "console",
                    "platform_id": "driver",
                    "chat_id": "driver",
                    "language": "de",
                    "role": "truck_driver",
                    "region": "koeln",
                    "active": True,
                    "coordinator": False,
                    "weekly_tip": False,
                    "created_at": now,
                    "last_seen_at": now,
                }
            ],
        )
        await connection.execute(
            insert(Report.__table__),
            [{"reference": f"SP-2026-00000{number}", "user_id": user, "transport": "console",
              "category": "other", "status": "new", "answers": {}, "contact_allowed": False,
              "status_note": "", "created_at": now, "updated_at": now}
             for number, user in ((1, 7), (2, None))],
        )  # fmt: skip
    await db.upgrade(url)
    async with engine.connect() as connection:
        regions = (
            await connection.execute(select(Report.reference, Report.region).order_by(Report.id))
        ).all()
    await engine.dispose()
    assert [tuple(row) for row in regions] == [
        ("SP-2026-000001", "koeln"),
        ("SP-2026-000002", None),
    ]
