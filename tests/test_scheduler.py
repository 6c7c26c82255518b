"""Scheduled jobs: persistent across a restart, purge, report reminders."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.scheduler import BotScheduler, purge, remind_reports, sync_url
from bot.storage.models import ConversationEntry, DialogueState, OutboxMessage, utcnow
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
    before.start(standard_jobs=False)
    before.schedule_broadcast(first, utcnow() + timedelta(seconds=2))
    before.schedule_broadcast(missed, utcnow() + timedelta(seconds=1))
    before.shutdown()
    await asyncio.sleep(1.5)  # the bot is down when `missed` is due: within the grace time

    after = BotScheduler(runtime)
    after.start(standard_jobs=False)
    try:
        assert {job.id for job in after.scheduler.get_jobs()} >= {f"broadcast:{first}"}
        assert await wait_for_rows(runtime, first) == 1
        assert await wait_for_rows(runtime, missed) == 1
    finally:
        after.shutdown()


async def test_standard_jobs_are_stored_once(runtime: Runtime) -> None:
    for _ in range(2):
        scheduler = BotScheduler(runtime)
        scheduler.start()
        ids = sorted(job.id for job in scheduler.scheduler.get_jobs())
        scheduler.shutdown()
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
    scheduler.start(standard_jobs=False)
    try:
        later = utcnow() + timedelta(minutes=runtime.settings.scheduler.report_reminder_minutes + 1)
        assert await remind_reports(now=later) == 1
        assert await remind_reports(now=later) == 0  # once
        async with runtime.sessions() as session:
            notice = await session.scalar(
                select(OutboxMessage).where(OutboxMessage.kind == "notice")
            )
            state = await session.scalar(select(DialogueState))
        assert notice is not None and state is not None and state.flow == "rep"
        ids = [choice[0] for choice in notice.payload[0]["choices"]]
        assert ids == ["/report", "/cancel"]

        far = utcnow() + timedelta(days=runtime.settings.retention.conversation_days + 1)
        counts = await purge(now=far)
        assert counts["conversation"] > 0
        async with runtime.sessions() as session:
            left = await session.scalar(select(func.count()).select_from(ConversationEntry))
        assert left == 0
    finally:
        scheduler.shutdown()
