"""Scheduled jobs: persistent across a restart, purge, report reminders."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import func, select, update

from bot.core.events import Reply
from bot.routine import purge
from bot.runtime import Runtime
from bot.scheduler import BotScheduler, sync_url
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import (
    Broadcast,
    ConversationEntry,
    DialogueState,
    OutboxMessage,
    utcnow,
)
from handlers.broadcast import fan_out_due
from handlers.report import remind_reports
from tests.chat import Chat
from tests.test_alerts import add_broadcast, add_user, outbox


async def wait_for_rows(runtime: Runtime, broadcast_id: int, seconds: float = 15.0) -> int:
    for _ in range(int(seconds * 10)):
        rows = await outbox(runtime, broadcast_id)
        if rows:
            return len(rows)
        await asyncio.sleep(0.1)
    return 0


def test_sync_url() -> None:
    assert sync_url("sqlite+aiosqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    assert sync_url("postgresql+asyncpg://u@h/db") == "postgresql+psycopg://u@h/db"


async def test_scheduled_fan_out_survives_a_restart(runtime: Runtime) -> None:
    await add_user(runtime, "a", "taxi_driver", "koeln")
    first = await add_broadcast(runtime, send_at=utcnow() + timedelta(seconds=2))
    missed = await add_broadcast(runtime, send_at=utcnow() + timedelta(seconds=1))
    before = BotScheduler(runtime)
    await before.start(with_standard_jobs=False)
    await before.schedule_broadcast(first, utcnow() + timedelta(seconds=2))
    await before.schedule_broadcast(missed, utcnow() + timedelta(seconds=1))
    await before.shutdown()
    await asyncio.sleep(1.5)  # the bot is down when `missed` is due: within the grace time

    after = BotScheduler(runtime)
    await after.start(with_standard_jobs=False)
    try:
        assert {job.id for job in after.scheduler.get_jobs()} >= {f"broadcast:{first}"}
        assert await wait_for_rows(runtime, first) == 1
        assert await wait_for_rows(runtime, missed) == 1
    finally:
        await after.shutdown()


async def test_standard_jobs_are_stored_once(runtime: Runtime) -> None:
    for _ in range(2):
        scheduler = BotScheduler(runtime)
        await scheduler.start()
        ids = sorted(job.id for job in scheduler.scheduler.get_jobs())
        await scheduler.shutdown()
    assert ids == [
        "broadcasts_due",
        "daily_digest",
        "daily_purge",
        "export_purge",
        "media_purge",
        "report_reminders",
        "urgent_resend",
        "weekly_tips",
    ]


async def test_purge_and_report_reminder(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "driver")
    await chat.onboard()
    await chat.send("/report")
    scheduler = BotScheduler(runtime)
    await scheduler.start(with_standard_jobs=False)
    try:
        later = utcnow() + timedelta(minutes=runtime.settings.scheduler.report_reminder_minutes + 1)
        assert await remind_reports(runtime, now=later) == 1
        assert await remind_reports(runtime, now=later) == 0  # once
        async with runtime.sessions() as session:
            notice = await session.scalar(
                select(OutboxMessage).where(OutboxMessage.kind == "notice")
            )
            state = await session.scalar(select(DialogueState))
        assert notice is not None and state is not None and state.flow == "rep"
        ids = [choice[0] for choice in notice.payload[0]["choices"]]
        assert ids == ["/report", "rep:~discard"]

        far = utcnow() + timedelta(days=runtime.settings.retention.conversation_days + 1)
        counts = await purge(runtime, now=far)
        assert counts["conversation"] > 0
        async with runtime.sessions() as session:
            left = await session.scalar(select(func.count()).select_from(ConversationEntry))
        assert left == 0
    finally:
        await scheduler.shutdown()


# -- exactly once: missed runs, one instance, expired alerts, the job store off the loop --


def local(runtime: Runtime, hour: int, minute: int) -> datetime:
    """Today at hour:minute in the deployment's zone."""
    tz = ZoneInfo(runtime.settings.bot.timezone)
    return datetime.now(tz).replace(hour=hour, minute=minute, second=0, microsecond=0)


async def digests(runtime: Runtime) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.dedupe_key.like("digest:%"))
        return list((await session.scalars(query)).all())


async def test_a_digest_missed_while_down_comes_once_on_restart(runtime: Runtime) -> None:
    runtime.settings.scheduler.digest_hour = 7
    runtime.settings.console.coordinators = ["leitstelle", "mara"]
    # Stopped at 06:50, restarted at 07:20: the 07:00 digest runs now, once.
    scheduler = BotScheduler(runtime)
    await scheduler.start(now=local(runtime, 7, 20).astimezone(UTC))
    await scheduler.shutdown()
    assert sorted(row.chat_id for row in await digests(runtime)) == ["leitstelle", "mara"]
    # Restarted again at 07:25 (or killed while it ran): nothing twice.
    again = BotScheduler(runtime)
    assert "daily_digest" in await again.catch_up(local(runtime, 7, 25).astimezone(UTC))
    await again.shutdown()
    assert len(await digests(runtime)) == 2
    # Past the grace period (60 minutes) a missed digest is not sent late.
    late = BotScheduler(runtime)
    assert "daily_digest" not in await late.catch_up(local(runtime, 8, 30).astimezone(UTC))
    await late.shutdown()


async def test_a_digest_killed_after_its_first_destination_is_finished_on_restart(
    runtime: Runtime,
) -> None:
    runtime.settings.console.coordinators = ["leitstelle", "mara"]
    day = local(runtime, 7, 0).date().isoformat()
    async with transaction(runtime.sessions) as session:
        await repos.queue_outbox(
            session,
            transport="console",
            chat_id="leitstelle",
            user_id=None,
            kind="notice",
            replies=[Reply("digest")],
            dedupe_key=f"digest:{day}:console:leitstelle",
        )
    scheduler = BotScheduler(runtime)
    await scheduler.start(now=local(runtime, 7, 5).astimezone(UTC))
    await scheduler.shutdown()
    assert sorted(row.chat_id for row in await digests(runtime)) == ["leitstelle", "mara"]


async def test_an_alert_that_expired_while_the_bot_was_down_is_never_sent(
    runtime: Runtime,
) -> None:
    from bot.storage.alerts import status_counts
    from handlers.alert_fanout import fan_out

    await add_user(runtime, "a", "taxi_driver", "koeln")
    await add_user(runtime, "b", "taxi_driver", "koeln")
    past = utcnow() - timedelta(hours=12)
    never = await add_broadcast(runtime, send_at=past, expires_at=past + timedelta(hours=1))
    # Another one was fanned out, then the bot was down until after it expired.
    stale = await add_broadcast(runtime, send_at=utcnow(), expires_at=utcnow() + timedelta(hours=1))
    await fan_out(runtime.sessions, runtime.content, ZoneInfo("Europe/Berlin"), stale)
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Broadcast, stale)
        assert stored is not None
        stored.expires_at = utcnow() - timedelta(minutes=1)
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.broadcast_id == stale)
            .values(expires_at=stored.expires_at)
        )
    async with runtime.sessions() as session:
        counts = await status_counts(session, stale)
    assert (counts["queued"], counts["expired"]) == (0, 2)  # never counted as queued
    scheduler = BotScheduler(runtime)
    await scheduler.start(with_standard_jobs=False)
    try:
        await fan_out_due(runtime)
    finally:
        await scheduler.shutdown()
    assert await outbox(runtime, never) == []
    async with runtime.sessions() as session:
        statuses = {b.id: b.status for b in (await session.scalars(select(Broadcast))).all()}
    assert statuses == {never: "expired", stale: "sent"}
    assert {row.status for row in await outbox(runtime, stale)} == {"expired"}


class SlowStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """A job store whose writes hang until released (a slow or locked database)."""

    def __init__(self, url: str) -> None:
        super().__init__(url=url)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.hanging = False

    def update_job(self, job: object) -> None:
        self.hanging = True
        self.entered.set()
        self.release.wait(10)
        self.hanging = False
        super().update_job(job)


async def test_a_slow_job_store_write_does_not_stall_answers(runtime: Runtime) -> None:
    store = SlowStore(sync_url(runtime.settings.database_url))
    scheduler = BotScheduler(runtime, jobstore=store)
    await scheduler.start(with_standard_jobs=False)
    chat = Chat(runtime.core, "driver")
    try:
        await asyncio.to_thread(
            scheduler.scheduler.add_job, record_tick, "interval", seconds=1, id="tick",
            next_run_time=utcnow(),
        )  # fmt: skip
        assert await asyncio.to_thread(store.entered.wait, 10)  # the write hangs now
        replies = await chat.send("/alarm")  # a person is answered meanwhile
        assert replies and store.hanging, "the answer waited for the job store"
    finally:
        store.release.set()
        await scheduler.shutdown()


TICKS: list[int] = []


async def record_tick() -> None:
    TICKS.append(1)
