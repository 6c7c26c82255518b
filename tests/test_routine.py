"""The daily digest for coordinators, the weekly tip, and the media purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.routine import daily_digest, purge_media, weekly_tips
from bot.runtime import Runtime
from bot.scheduler import BotScheduler
from bot.storage.models import Media, OutboxMessage, utcnow
from tests.chat import Chat
from tests.test_report import quick_report


@pytest.fixture
async def scheduler(runtime: Runtime) -> AsyncIterator[BotScheduler]:
    running = BotScheduler(runtime)
    await running.start(with_standard_jobs=False)
    yield running
    await running.shutdown()


async def notices_to(runtime: Runtime, chat_id: str) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(
            OutboxMessage.chat_id == chat_id, OutboxMessage.kind == "notice"
        )
        return list((await session.scalars(query)).all())


async def test_daily_digest_lists_new_reports_once_a_day(
    runtime: Runtime, scheduler: BotScheduler
) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/report")
    await quick_report(driver)
    await driver.press("Anonym senden")
    assert await daily_digest(runtime) == 1
    assert await daily_digest(runtime) == 0  # the same day again: nothing twice
    [digest] = await notices_to(runtime, "leitstelle")
    assert "1 neue Meldung" in digest.payload[0]["title"]
    assert "SP-" in digest.payload[0]["text"] and "Ladungsdiebstahl" in digest.payload[0]["text"]
    tomorrow = utcnow() + timedelta(days=2)
    assert await daily_digest(runtime, now=tomorrow) == 1
    latest = (await notices_to(runtime, "leitstelle"))[-1]
    assert latest.payload[0]["text"] == "Keine neuen Meldungen in den letzten 24 Stunden."


async def test_weekly_tip_only_for_those_who_asked_once_a_week(
    runtime: Runtime, scheduler: BotScheduler
) -> None:
    taxi, other = Chat(runtime.core, "taxi"), Chat(runtime.core, "other")
    await taxi.onboard(language="English", role="Taxi", region="Cologne")
    await other.onboard()
    await taxi.send("/settings")
    await taxi.press("Tip of the week")
    assert "Tip of the week (Mondays): on" in taxi.screen
    assert await weekly_tips(runtime) == 1
    assert await weekly_tips(runtime) == 0
    [tip] = await notices_to(runtime, "taxi")
    assert tip.payload[0]["title"].startswith("💡 Tip of the week: ")
    taxi_titles = {runtime.content.topic("en", t).title for t in ("silent_alarm_taxi", "call_110",
                   "describe_place", "describe_person", "describe_vehicle")}  # fmt: skip
    assert tip.payload[0]["title"].removeprefix("💡 Tip of the week: ") in taxi_titles
    assert await notices_to(runtime, "other") == []


async def test_media_past_retention_is_deleted(
    runtime: Runtime, scheduler: BotScheduler, tmp_path: Path
) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff old evidence")
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/report")
    await driver.press("Nein")
    await driver.press("Sonstiges")
    await driver.press("Überspringen")
    await driver.send("Parkplatz")
    await driver.send(f"/photo {photo}")
    await driver.press("Anonym senden")
    async with runtime.sessions() as session:
        [stored] = (await session.scalars(select(Media))).all()
    path = runtime.core.media.path_for(stored.sha256)
    assert path.exists()
    assert await purge_media(runtime) == 0
    later = utcnow() + timedelta(days=runtime.settings.retention.media_days + 1)
    assert await purge_media(runtime, now=later) == 1
    assert not path.exists()
    async with runtime.sessions() as session:
        assert (await session.scalars(select(Media))).all() == []
