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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.config import Settings
from bot.core.context import Context, Destination
from bot.core.events import Choice, Reply
from bot.core.forms import FormState
from bot.leader import RETRY_SECONDS, Leadership, keep_leading
from bot.routine import daily_digest, purge_exports, purge_media, weekly_tips
from bot.runtime import Runtime
from bot.storage import repos, retention
from bot.storage.db import transaction
from bot.storage.events import forget_handled
from bot.storage.models import DialogueState, User, utcnow

log = logging.getLogger(__name__)
REPORT_FLOW = "rep"
HANDLED_KEPT = timedelta(days=7)


def sync_url(url: str) -> str:
    """The job store's (synchronous) URL for the bot's async database URL."""
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url.removeprefix("sqlite+aiosqlite://")
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql+asyncpg://")
    raise ValueError(f"no synchronous driver known for {url.split(':', 1)[0]}")


class OffLoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's asyncio scheduler with its synchronous job store kept off the loop.

    The job store queries the database synchronously whenever jobs are processed (next run
    times, removals). AsyncIOScheduler does that on the event loop, where a slow write
    would stall every person's answer; here the processing runs in a worker thread, and
    the jobs themselves (coroutines) are handed back to the loop."""

    _busy = False
    _again = False

    def wakeup(self) -> None:
        loop = self._eventloop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._stop_timer()
        if self.state == STATE_STOPPED or self._eventloop is None:
            return
        if self._busy:
            self._again = True
            return
        self._busy = True
        future = self._eventloop.run_in_executor(None, self._process_jobs)
        future.add_done_callback(self._processed)

    def _processed(self, future: asyncio.Future[float | None]) -> None:
        self._busy = False
        try:
            wait = future.result()
        except Exception:
            log.exception("processing the scheduled jobs failed; trying again shortly")
            wait = RETRY_SECONDS
        if self._again:
            self._again = False
            self._wake()
        elif self.state != STATE_STOPPED and self._eventloop is not None:
            self._start_timer(wait)

    def _create_default_executor(self) -> AsyncIOExecutor:
        return _LoopExecutor()


class _LoopExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """Submits a due job from the processing thread to the event loop, thread-safely."""

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        self._eventloop.call_soon_threadsafe(super()._do_submit_job, job, run_times)


def standard_jobs(settings: Settings) -> list[tuple[Callable[..., Any], str, dict[str, Any]]]:
    """(job, id, trigger) of the jobs every deployment runs."""
    tz = ZoneInfo(settings.bot.timezone)
    return [
        (fan_out_due, "broadcasts_due", {"trigger": IntervalTrigger(seconds=30)}),
        (urgent_resend, "urgent_resend", {"trigger": IntervalTrigger(minutes=1)}),
        (remind_reports, "report_reminders", {"trigger": IntervalTrigger(minutes=5)}),
        (purge, "daily_purge", {"trigger": CronTrigger(hour=3, minute=17, timezone=tz)}),
        (purge_media, "media_purge", {"trigger": CronTrigger(hour=3, minute=27, timezone=tz)}),
        (purge_exports, "export_purge", {"trigger": IntervalTrigger(minutes=5)}),
        (daily_digest, "daily_digest",
         {"trigger": CronTrigger(hour=settings.scheduler.digest_hour, timezone=tz)}),
        (weekly_tips, "weekly_tips",
         {"trigger": CronTrigger(day_of_week="mon", hour=9, timezone=tz)}),
    ]  # fmt: skip


class BotScheduler:
    """The bot's jobs; one instance per deployment runs them (see `bot.leader`)."""

    current: BotScheduler | None = None

    def __init__(self, runtime: Runtime, jobstore: Any = None) -> None:
        self.runtime = runtime
        settings = runtime.settings.scheduler
        store = jobstore or SQLAlchemyJobStore(
            url=sync_url(runtime.settings.database_url),
            engine_options={"hide_parameters": True},
        )
        self.scheduler = OffLoopScheduler(
            jobstores={"default": store},
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": settings.misfire_grace_minutes * 60,
                "max_instances": 1,
            },
            timezone=ZoneInfo(runtime.settings.bot.timezone),
        )

    async def start(self, with_standard_jobs: bool = True, now: datetime | None = None) -> None:
        """Start: the job store is opened and the standard jobs written in a worker
        thread; then the periodic runs missed while no instance ran the scheduler (within
        `scheduler.misfire_grace_minutes`) run once, and processing begins."""
        BotScheduler.current = self
        self.scheduler._eventloop = asyncio.get_running_loop()
        await asyncio.to_thread(self.scheduler.start, paused=True)
        if with_standard_jobs:
            await asyncio.to_thread(self._add_standard_jobs)
        self.scheduler.resume()
        if with_standard_jobs:
            await self.catch_up(now or utcnow())

    def _add_standard_jobs(self) -> None:
        for job, job_id, trigger in standard_jobs(self.runtime.settings):
            self.scheduler.add_job(job, id=job_id, replace_existing=True, **trigger)

    async def catch_up(self, now: datetime) -> list[str]:
        """Run once each daily or weekly job whose time fell within the grace period before
        `now` (the bot was down, or was killed while the job ran). Every such job is
        idempotent — a digest, a tip, a purge is queued or done once per day or week — so a
        run that had in fact finished sends nothing twice."""
        grace = timedelta(minutes=self.runtime.settings.scheduler.misfire_grace_minutes)
        ran = []
        for job, job_id, trigger in standard_jobs(self.runtime.settings):
            cron = trigger["trigger"]
            if not isinstance(cron, CronTrigger):
                continue
            due = cron.get_next_fire_time(None, now - grace)
            if due is not None and due <= now:
                log.info("scheduler: running %s, missed at %s", job_id, due.isoformat())
                try:
                    await job()
                except Exception:
                    log.exception("scheduler: catching up %s failed", job_id)
                ran.append(job_id)
        return ran

    async def schedule_broadcast(self, broadcast_id: int, when: datetime) -> None:
        """Fan a broadcast out at its time (also picked up by `broadcasts_due`)."""
        await asyncio.to_thread(
            self.scheduler.add_job,
            fan_out_broadcast,
            "date",
            run_date=when,
            args=[broadcast_id],
            id=f"broadcast:{broadcast_id}",
            replace_existing=True,
        )

    async def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for store in self.scheduler._jobstores.values():
            engine = getattr(store, "engine", None)
            if engine is not None:
                await asyncio.to_thread(engine.dispose)
        if BotScheduler.current is self:
            BotScheduler.current = None


@asynccontextmanager
async def scheduler_while_leader(
    runtime: Runtime, retry_seconds: float = RETRY_SECONDS, with_standard_jobs: bool = True
) -> AsyncIterator[Leadership]:
    """Run the scheduler in this process only while it is the leader; stop it on exit."""
    leadership = Leadership(runtime.settings.database_url)
    running: list[BotScheduler] = []

    async def start() -> None:
        scheduler = BotScheduler(runtime)
        running.append(scheduler)
        await scheduler.start(with_standard_jobs)

    async def stop() -> None:
        while running:
            await running.pop().shutdown()

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


async def fan_out_due(now: datetime | None = None) -> None:
    """Fan out the alerts whose time has come; alerts that expired first (the bot was down)
    are marked expired with whatever of them waits, and never sent late."""
    from handlers.alert_fanout import due_broadcasts, expire_broadcasts

    runtime = _runtime()
    if runtime is None:
        return
    now = now or utcnow()
    async with transaction(runtime.sessions) as session:
        await expire_broadcasts(session, now)
    async with runtime.sessions() as session:
        due = await due_broadcasts(session, now)
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
    now = now or utcnow()
    # Staff named in the config are never purged as people who never agreed.
    keep = {
        (door.name, platform_id)
        for door in runtime.core.doors()
        for platform_id in (*door.admins, *door.coordinators)
    }
    async with transaction(runtime.sessions) as session:
        purged = await retention.purge_rows(session, settings.retention, now, keep)
        # Platforms repeat an update within hours (a webhook retried, a sync replayed): a
        # week of handled ids is plenty.
        purged.counts["handled_events"] = await forget_handled(session, now - HANDLED_KEPT)
        await repos.audit(session, None, "purge", "", purged.counts)
    for sha256 in purged.files:
        runtime.core.media.delete(sha256)
    log.info("purge: %s", ", ".join(f"{k} {v}" for k, v in purged.counts.items() if v) or "none")
    return purged.counts


async def remind_reports(now: datetime | None = None) -> int:
    """One notice about a report left half done: continue or discard. The draft is marked
    through the event pipeline (under the person's lock), like every write of a person's
    dialogue state."""
    runtime = _runtime()
    if runtime is None:
        return 0
    now = now or utcnow()
    minutes = runtime.settings.scheduler.report_reminder_minutes
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(User.transport, User.platform_id, DialogueState.chat_id)
                .join(User, User.id == DialogueState.user_id)
                .where(
                    User.transport.in_([d.name for d in runtime.core.doors() if d.active]),
                    DialogueState.flow == REPORT_FLOW,
                    DialogueState.updated_at < now - timedelta(minutes=minutes),
                    User.active.is_(True),
                )
                .limit(500)
            )
        ).all()
    reminded = 0
    for transport, platform_id, chat_id in rows:
        done: list[bool] = []

        async def remind(context: Context, done: list[bool] = done) -> None:
            state = FormState.load(context.state.data)
            if context.flow != REPORT_FLOW or state.reminded:
                return  # sent meanwhile, or reminded before
            state.reminded = True
            context.state.data = state.dump()
            reply = Reply(
                text=context.t("alerts.reminder"),
                choices=[
                    Choice("/report", context.t("alerts.reminder_continue")),
                    Choice(f"{REPORT_FLOW}:~discard", context.t("alerts.reminder_discard")),
                ],
            )
            own = Destination(context.event.transport, context.event.chat_id, context.user.id)
            await context.send_to(own, [reply], kind="notice")
            done.append(True)

        await runtime.core.pipeline.system(transport, platform_id, chat_id, remind)
        reminded += len(done)
    return reminded
