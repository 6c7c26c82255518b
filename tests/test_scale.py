"""Two instances on one PostgreSQL database, each in its own process (`tests/scale_runner.py`).

They share the outbox (claimed with `FOR UPDATE SKIP LOCKED`) and compete for the
scheduler's advisory lock. Proven here: a 2,000-recipient alert reaches every person
exactly once, counted at the receiving Bot API server; a scheduled job fires once; and
when the leader is killed (SIGKILL) the standby takes the scheduler over.

PostgreSQL only: the module is skipped unless SICHERHEITSBOT_TEST_DATABASE_URL names a
PostgreSQL database. `tests/run.sh` runs the suite twice, first with the URL empty (SQLite:
skipped here) and then on PostgreSQL (run here); CI always sets the URL, so these tests
run in every CI build.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select

from bot.core.events import Reply
from bot.delivery.outbox import OutboxWorker
from bot.runtime import Runtime
from bot.scheduler import sync_url
from bot.storage.models import AuditEntry, OutboxMessage
from handlers.alert_fanout import fan_out
from tests.crowd import add_alert, add_telegram_users
from tests.peers.botapi import BotApiServer

# Two instances need PostgreSQL: run in the PostgreSQL pass of tests/run.sh (and CI).
pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parent.parent
TOKENS = {"a": "1001:INSTANCE_A", "b": "1002:INSTANCE_B"}
RECIPIENTS = 2_000


class Instance:
    """A runner process and the state lines it printed."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().strip())
            self._changed.set()
        self._changed.set()

    @property
    def state(self) -> str:
        return next((line for line in reversed(self.lines) if line != "ready"), "")

    async def wait_for(self, line: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while line not in self.lines:
                if self.process.returncode is not None:
                    raise AssertionError(f"instance {self.name} exited: {self.lines}")
                self._changed.clear()
                await self._changed.wait()

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), 30)
        await self._reader
        return code


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApiServer]:
    # 1 % of sends fail with a 502 (unprocessed): retries must not duplicate anything.
    async with BotApiServer(transient_failure_rate=0.01, seed=9) as server:
        for token in TOKENS.values():
            server.add_bot(token)
        yield server


Launch = Callable[[], Awaitable[dict[str, Instance]]]


@pytest.fixture
async def launch(runtime: Runtime, bot_api: BotApiServer, tmp_path: Path) -> AsyncIterator[Launch]:
    """Starts instances a and b together on the test database, each with its own bot
    token (to tell who sent what); kills what is left at the end."""
    started: dict[str, Instance] = {}

    async def start() -> dict[str, Instance]:
        for name, token in TOKENS.items():
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.scale_runner",
                "--database-url",
                runtime.settings.database_url,
                "--api",
                bot_api.base_url,
                "--token",
                token,
                "--data-dir",
                str(tmp_path / name),
                "--scheduler",
                "--retry-seconds",
                "0.5",
                cwd=ROOT,
                env={**os.environ, "SCALE_INSTANCE": name, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.PIPE,
            )
            started[name] = Instance(name, process)
        for instance in started.values():
            await instance.wait_for("ready")
        return started

    try:
        yield start
    finally:
        for instance in started.values():
            await instance.stop(signal.SIGKILL)


def store_jobs(runtime: Runtime, jobs: dict[str, dict[str, object]]) -> None:
    """Put jobs into the shared job store without running a scheduler here."""
    store = SQLAlchemyJobStore(url=sync_url(runtime.settings.database_url))
    scheduler = AsyncIOScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        for job_id, trigger in jobs.items():
            scheduler.add_job(
                "tests.scale_runner:record",
                args=[job_id],
                id=job_id,
                replace_existing=True,
                misfire_grace_time=60,
                coalesce=True,
                **trigger,
            )
    finally:
        scheduler.shutdown(wait=False)
        store.engine.dispose()


async def fired(runtime: Runtime, label: str) -> list[AuditEntry]:
    async with runtime.sessions() as session:
        query = select(AuditEntry).where(AuditEntry.action == f"scale:{label}")
        return list((await session.scalars(query.order_by(AuditEntry.id))).all())


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll the database or another process (nothing here to wait on) until `check`."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def wait_for_fired(runtime: Runtime, label: str) -> None:
    async def done() -> bool:
        return bool(await fired(runtime, label))

    await until(done, 20)


async def sent_rows(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        query = select(func.count()).where(OutboxMessage.status == "sent")
        return int(await session.scalar(query) or 0)


async def test_two_instances_deliver_a_broadcast_to_2000_people_exactly_once(
    runtime: Runtime, bot_api: BotApiServer, launch: Launch
) -> None:
    chat_ids = await add_telegram_users(runtime.sessions, RECIPIENTS)
    for chat_id in chat_ids:
        bot_api.add_user(chat_id)
    broadcast = await add_alert(runtime.sessions)
    await launch()
    # Fanned out while both instances poll: they claim pages as they are queued.
    tz = ZoneInfo(runtime.settings.bot.timezone)
    assert await fan_out(runtime.sessions, runtime.content, tz, broadcast) == RECIPIENTS

    async def all_sent() -> bool:
        return await sent_rows(runtime) == RECIPIENTS

    await until(all_sent, 40)
    await asyncio.sleep(0.5)  # anything sent twice would arrive now

    per_chat: Counter[int] = Counter()
    per_instance: Counter[str] = Counter()
    for name, token in TOKENS.items():
        for message in bot_api.sent_messages(token=token):
            per_chat[message.chat_id] += 1
            per_instance[name] += 1
    assert sorted(per_chat) == chat_ids  # nobody missed
    assert set(per_chat.values()) == {1}  # nobody twice
    assert per_instance["a"] > 0 and per_instance["b"] > 0, per_instance  # both worked
    assert bot_api.sent_count == RECIPIENTS


async def test_only_the_leader_schedules_and_the_standby_takes_over(
    runtime: Runtime, launch: Launch
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    store_jobs(
        runtime,
        {
            "once": {"trigger": "date", "run_date": soon},
            "heartbeat": {"trigger": "interval", "seconds": 1},
        },
    )
    # Stored before the instances start: APScheduler 3 reads the store at start and at
    # each wake-up (the heartbeat wakes the leader every second, so "later" is seen).
    instances = await launch()
    a, b = instances["a"], instances["b"]

    async def decided() -> bool:
        return {a.state, b.state} == {"leader", "standby"}

    await until(decided, 15)
    leader, standby = (a, b) if a.state == "leader" else (b, a)

    await wait_for_fired(runtime, "once")
    await asyncio.sleep(2)  # a second scheduler would have fired it by now, too
    assert [row.subject for row in await fired(runtime, "once")] == [leader.name]
    assert {row.subject for row in await fired(runtime, "heartbeat")} == {leader.name}
    assert standby.state == "standby"

    killed_at = datetime.now(UTC)
    assert await leader.stop(signal.SIGKILL) == -signal.SIGKILL
    await standby.wait_for("leader", timeout=15)
    store_jobs(runtime, {"later": {"trigger": "date", "run_date": datetime.now(UTC)}})
    await wait_for_fired(runtime, "later")
    await asyncio.sleep(1.5)
    assert [row.subject for row in await fired(runtime, "later")] == [standby.name]
    beats = await fired(runtime, "heartbeat")
    # The standby ran nothing while the leader lived; after the kill only it runs jobs.
    assert all(row.at > killed_at for row in beats if row.subject == standby.name)
    assert any(row.subject == standby.name for row in beats)
    assert await standby.stop() == 0


class Recorder:
    """An outbox sender that only counts."""

    transport = "telegram"

    def __init__(self) -> None:
        self.chats: list[str] = []

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        self.chats.append(chat_id)
        return "1"


async def test_a_starting_instance_leaves_rows_in_flight_to_their_worker(
    runtime: Runtime,
) -> None:
    chat_ids = await add_telegram_users(runtime.sessions, 3)
    broadcast = await add_alert(runtime.sessions)
    await fan_out(runtime.sessions, runtime.content, ZoneInfo("Europe/Berlin"), broadcast)
    busy = OutboxWorker(runtime.sessions, Recorder(), lease_seconds=1.0)
    assert len(await busy.claim()) == 3  # in flight: claimed, not yet sent

    starting = Recorder()
    worker = OutboxWorker(runtime.sessions, starting)
    await worker.recover()
    assert await worker.run_once() == 0  # another instance's rows are left alone
    await asyncio.sleep(1.1)  # ... until their lease ends (that instance died)
    assert await worker.run_once() == 3
    assert sorted(starting.chats) == [str(chat_id) for chat_id in chat_ids]
