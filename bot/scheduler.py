"""Scheduled jobs: APScheduler 3 with a persistent SQLAlchemy job store in the bot's database.

The job store is synchronous, so it gets a sync URL of the same database
(sqlite+aiosqlite -> sqlite, postgresql+asyncpg -> postgresql+psycopg). The jobs are the
ones the features registered with their routers (`router.job`, bot/core/jobs.py); the job
store names one function, `run_job`, with the job's id, so a stored job survives a restart
and finds the running bot through `BotScheduler.current`. Every job reads its work from the
database (the database is the memory), so a missed or coalesced run loses nothing.

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
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import metrics
from bot.config import Settings
from bot.core.jobs import Daily, Every
from bot.leader import RETRY_SECONDS, Leadership, keep_leading
from bot.runtime import Runtime
from bot.storage.models import utcnow

log = logging.getLogger(__name__)
# The one-off job a scheduled alert's fan-out runs (registered by the broadcast feature).
BROADCAST_JOB = "fan_out_broadcast"


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


def _trigger(when: Every | Daily, settings: Settings) -> IntervalTrigger | CronTrigger:
    if isinstance(when, Every):
        return IntervalTrigger(seconds=when.seconds)
    tz = ZoneInfo(settings.bot.timezone)
    hour = when.hour_in(settings)
    return CronTrigger(day_of_week=when.days, hour=hour, minute=when.minute, timezone=tz)


def standard_jobs(runtime: Runtime) -> list[tuple[str, IntervalTrigger | CronTrigger]]:
    """(id, trigger) of the periodic jobs the composed routers registered."""
    return [
        (job.id, _trigger(job.when, runtime.settings))
        for job in runtime.core.jobs.values()
        if job.when is not None
    ]


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
        for job_id, trigger in standard_jobs(self.runtime):
            self.scheduler.add_job(
                run_job, trigger, args=[job_id], id=job_id, replace_existing=True
            )

    async def catch_up(self, now: datetime) -> list[str]:
        """Run once each daily or weekly job whose time fell within the grace period before
        `now` (the bot was down, or was killed while the job ran). Every such job is
        idempotent — a digest, a tip, a purge is queued or done once per day or week — so a
        run that had in fact finished sends nothing twice."""
        grace = timedelta(minutes=self.runtime.settings.scheduler.misfire_grace_minutes)
        ran = []
        for job_id, trigger in standard_jobs(self.runtime):
            if not isinstance(trigger, CronTrigger):
                continue
            due = trigger.get_next_fire_time(None, now - grace)
            if due is not None and due <= now:
                log.info("scheduler: running %s, missed at %s", job_id, due.isoformat())
                try:
                    await self.runtime.core.jobs[job_id].run(self.runtime)
                except Exception:
                    log.exception("scheduler: catching up %s failed", job_id)
                ran.append(job_id)
        return ran

    async def schedule_broadcast(self, broadcast_id: int, when: datetime) -> None:
        """Fan a broadcast out at its time (also picked up by `broadcasts_due`)."""
        await asyncio.to_thread(
            self.scheduler.add_job,
            run_job,
            "date",
            run_date=when,
            args=[BROADCAST_JOB, broadcast_id],
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
        metrics.LEADER.set(1)

    async def stop() -> None:
        metrics.LEADER.set(0)
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


# -- the one function the job store names: jobs are found by id among the routers' --------


async def run_job(job_id: str, *args: Any) -> None:
    """Run the registered job `job_id` on the running bot (the job store keeps only this
    function's name, the id and plain arguments such as an alert's number)."""
    if BotScheduler.current is None:
        log.warning("scheduled job %s ran without a running bot", job_id)
        return
    runtime = BotScheduler.current.runtime
    job = runtime.core.jobs.get(job_id)
    if job is None:
        log.warning("scheduled job %s is not registered (any more): skipped", job_id)
        return
    await job.run(runtime, *args)
