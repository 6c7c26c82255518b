"""Scheduled jobs: APScheduler 3 with a persistent SQLAlchemy job store in the bot's database.

The job store is synchronous, so it gets a sync URL of the same database
(sqlite+aiosqlite -> sqlite, postgresql+asyncpg -> postgresql+psycopg). Jobs are
module-level functions referenced by name, so they survive a restart; they find the
running bot through `BotScheduler.current`. Every job reads its work from the database
(the database is the memory), so a missed or coalesced run loses nothing.

With several instances on one PostgreSQL database only the leader (`bot.leader`: the
holder of an advisory lock) runs the scheduler; `scheduler_while_leader` starts and stops
it as leadership comes and goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from bot.core.events import Choice, Reply
from bot.leader import RETRY_SECONDS, Leadership, keep_leading
from bot.routine import daily_digest, purge_exports, purge_media, weekly_tips
from bot.runtime import Runtime
from bot.storage import repos, retention
from bot.storage.db import transaction
from bot.storage.models import DialogueState, User, utcnow

log = logging.getLogger(__name__)
REPORT_FLOW = "rep"


def sync_url(url: str) -> str:
    """The job store's (synchronous) URL for the bot's async database URL."""
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url.removeprefix("sqlite+aiosqlite://")
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql+asyncpg://")
    raise ValueError(f"no synchronous driver known for {url.split(':', 1)[0]}")


class BotScheduler:
    """The bot's jobs; one instance per process runs them."""

    current: BotScheduler | None = None

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings.scheduler
        self.scheduler = AsyncIOScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(
                    url=sync_url(runtime.settings.database_url),
                    engine_options={"hide_parameters": True},
                )
            },
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": settings.misfire_grace_minutes * 60,
                "max_instances": 1,
            },
            timezone=ZoneInfo(runtime.settings.bot.timezone),
        )

    def start(self, standard_jobs: bool = True) -> None:
        BotScheduler.current = self
        self.scheduler.start()
        if standard_jobs:
            self.add_standard_jobs()

    def add_standard_jobs(self) -> None:
        add = self.scheduler.add_job
        add(fan_out_due, "interval", seconds=30, id="broadcasts_due", replace_existing=True)
        add(urgent_resend, "interval", minutes=1, id="urgent_resend", replace_existing=True)
        add(remind_reports, "interval", minutes=5, id="report_reminders", replace_existing=True)
        add(purge, "cron", hour=3, minute=17, id="daily_purge", replace_existing=True)
        add(purge_media, "cron", hour=3, minute=27, id="media_purge", replace_existing=True)
        add(purge_exports, "interval", minutes=5, id="export_purge", replace_existing=True)
        digest_hour = self.runtime.settings.scheduler.digest_hour
        add(daily_digest, "cron", hour=digest_hour, id="daily_digest", replace_existing=True)
        add(weekly_tips, "cron", day_of_week="mon", hour=9, id="weekly_tips", replace_existing=True)

    def schedule_broadcast(self, broadcast_id: int, when: datetime) -> None:
        """Fan a broadcast out at its time (also picked up by `broadcasts_due`)."""
        self.scheduler.add_job(
            fan_out_broadcast,
            "date",
            run_date=when,
            args=[broadcast_id],
            id=f"broadcast:{broadcast_id}",
            replace_existing=True,
        )

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for store in self.scheduler._jobstores.values():
            engine = getattr(store, "engine", None)
            if engine is not None:
                engine.dispose()
        if BotScheduler.current is self:
            BotScheduler.current = None


@asynccontextmanager
async def scheduler_while_leader(
    runtime: Runtime, retry_seconds: float = RETRY_SECONDS, standard_jobs: bool = True
) -> AsyncIterator[Leadership]:
    """Run the scheduler in this process only while it is the leader; stop it on exit."""
    leadership = Leadership(runtime.settings.database_url)
    running: list[BotScheduler] = []

    def start() -> None:
        scheduler = BotScheduler(runtime)
        running.append(scheduler)
        scheduler.start(standard_jobs)

    def stop() -> None:
        while running:
            running.pop().shutdown()

    task = asyncio.create_task(keep_leading(leadership, start, stop, retry_seconds))
    try:
        yield leadership
    finally:
        task.cancel()
        for outcome in await asyncio.gather(task, return_exceptions=True):
            if not isinstance(outcome, asyncio.CancelledError | None):
                log.error("leadership loop failed: %r", outcome)


def _runtime() -> Runtime | None:
    if BotScheduler.current is None:
        log.warning("scheduled job ran without a running bot")
        return None
    return BotScheduler.current.runtime


def _tz(runtime: Runtime) -> ZoneInfo:
    return ZoneInfo(runtime.settings.bot.timezone)


# -- jobs (module level: referenced by name in the job store) --------------------------------


async def fan_out_broadcast(broadcast_id: int) -> None:
    from handlers.alert_fanout import fan_out

    runtime = _runtime()
    if runtime is not None:
        await fan_out(runtime.sessions, runtime.content, _tz(runtime), broadcast_id)


async def fan_out_due() -> None:
    from handlers.alert_fanout import due_broadcasts

    runtime = _runtime()
    if runtime is None:
        return
    async with runtime.sessions() as session:
        due = await due_broadcasts(session, utcnow())
    for broadcast_id in due:
        await fan_out_broadcast(broadcast_id)


async def urgent_resend() -> None:
    from handlers.alert_fanout import resend_urgent

    runtime = _runtime()
    if runtime is not None:
        minutes = runtime.settings.scheduler.urgent_resend_minutes
        await resend_urgent(runtime.sessions, runtime.content, _tz(runtime), minutes)


async def purge(now: datetime | None = None) -> dict[str, int]:
    """Delete what the retention settings no longer allow: conversation logs, closed
    reports (and the files only they held), dialogues left untouched, people who never
    agreed or blocked the bot, outbox texts and records, expired alerts, the audit log."""
    runtime = _runtime()
    if runtime is None:
        return {}
    settings = runtime.settings
    keep = {
        (transport, platform_id)
        for transport in ("console", "telegram", "matrix")
        for platform_id in settings.admin_ids(transport) | settings.coordinator_ids(transport)
    }
    async with transaction(runtime.sessions) as session:
        purged = await retention.purge_rows(session, settings.retention, now or utcnow(), keep)
        await repos.audit(session, None, "purge", "", purged.counts)
    for sha256 in purged.files:
        runtime.core.media.delete(sha256)
    log.info("purge: %s", ", ".join(f"{k} {v}" for k, v in purged.counts.items() if v) or "none")
    return purged.counts


async def remind_reports(now: datetime | None = None) -> int:
    """One notice about a report left half done: continue or discard."""
    runtime = _runtime()
    if runtime is None:
        return 0
    now = now or utcnow()
    minutes = runtime.settings.scheduler.report_reminder_minutes
    content = runtime.content
    reminded = 0
    async with transaction(runtime.sessions) as session:
        rows = (
            await session.execute(
                select(DialogueState, User)
                .join(User, User.id == DialogueState.user_id)
                .where(
                    DialogueState.flow == REPORT_FLOW,
                    DialogueState.updated_at < now - timedelta(minutes=minutes),
                    User.active.is_(True),
                )
                .limit(500)
            )
        ).all()
        for state, user in rows:
            if state.data.get("reminded"):
                continue
            state.data = {**state.data, "reminded": True}
            lang = user.language
            reply = Reply(
                text=content.text(lang, "alerts.reminder"),
                choices=[
                    Choice("/report", content.text(lang, "alerts.reminder_continue")),
                    Choice("/cancel", content.text(lang, "alerts.reminder_discard")),
                ],
            )
            await repos.queue_outbox(
                session,
                transport=user.transport,
                chat_id=state.chat_id,
                user_id=user.id,
                kind="notice",
                replies=[reply],
            )
            reminded += 1
    return reminded
