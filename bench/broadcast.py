"""Broadcast fan-out: an alert to N people, delivered by the outbox worker in its own process.

The worker (`tests/scale_runner.py`, no scheduler) sends over HTTP to the Bot API test
server in flood-limit mode with time compressed tenfold: Telegram's 30 messages per
second become 300 per second (30 in any 100 ms), enforced by the server (sliding windows,
429 with retry_after), and 1 % of sends fail with a 502. Tenfold, not more: the server
counts arrivals, and the few milliseconds a request's way varies by must stay small
beside the window. The worker is configured with the same
compressed limits. Counted at the server: messages per chat id (duplicates, losses), 429s
and 502s; sampled from outside: the worker's resident memory.

Three runs, each on a fresh database: the small broadcast (memory growth), the full one,
and the full one with the worker killed (SIGKILL) at half and started again. These use
`BotApiSender` (aiohttp), which divides flood waits by the time scale. A fourth run uses
the Telegram transport's own `TelegramSender` (PTB, and a transaction per message that
remembers the alert's button for a typed answer) in real time: 30 messages per second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psutil  # type: ignore[import-untyped]
from sqlalchemy import func, select

from bench.common import ROOT, fresh_database
from bot.config import Settings
from bot.runtime import open_runtime
from bot.storage.models import OutboxMessage
from handlers.alert_fanout import fan_out
from tests.crowd import add_alert, add_telegram_users
from tests.peers.botapi import BotApiServer, FloodLimits

TOKEN = "4343:BROADCAST"
TIME_SCALE = 10.0
TRANSIENT = 0.01
FIRST_CHAT = 70_000_000
# Short enough that rows in flight at the kill are sent in the same run on PostgreSQL
# (on SQLite the restarted worker takes them back at once).
LEASE_SECONDS = 30.0
POLL = 0.05


@dataclass
class Worker:
    """The worker process, and its peak resident memory as sampled."""

    process: asyncio.subprocess.Process
    peak_rss: int = 0
    cpu_seconds: float = 0.0

    def sample(self) -> None:
        try:
            process = psutil.Process(self.process.pid)
            rss = process.memory_info().rss
            times = process.cpu_times()
        except psutil.Error:
            return
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_seconds = times.user + times.system


@dataclass(frozen=True)
class Setup:
    """Which sender, how fast time runs, and the limit the server enforces then."""

    sender: str = "lean"
    time_scale: float = TIME_SCALE

    @property
    def flood(self) -> FloodLimits:
        return FloodLimits(overall_per_second=30, time_scale=self.time_scale)

    @property
    def enforced(self) -> float:
        return self.flood.overall_per_second * self.time_scale


async def start_worker(settings: Settings, server: BotApiServer, setup: Setup) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.scale_runner",
        "--database-url",
        settings.database_url,
        "--api",
        server.base_url,
        "--token",
        TOKEN,
        "--data-dir",
        str(settings.bot.data_dir / "worker"),
        "--time-scale",
        str(setup.time_scale),
        "--overall-per-second",
        str(setup.enforced),
        "--per-chat-per-second",
        str(setup.flood.private_chat_per_second * setup.time_scale),
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--sender",
        setup.sender,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
    )
    return Worker(process)


async def prepare(settings: Settings, recipients: int) -> tuple[list[int], float]:
    """People and the alert's outbox rows; returns chat ids and the fan-out's seconds."""
    async with open_runtime(settings) as runtime:
        chat_ids = await add_telegram_users(runtime.sessions, recipients, FIRST_CHAT)
        broadcast = await add_alert(runtime.sessions)
        started = time.perf_counter()
        tz = ZoneInfo(settings.bot.timezone)
        queued = await fan_out(runtime.sessions, runtime.content, tz, broadcast)
        seconds = time.perf_counter() - started
    if queued != recipients:
        raise RuntimeError(f"fan-out queued {queued} of {recipients}")
    return chat_ids, seconds


async def open_rows(settings: Settings) -> int:
    """Rows not finished yet (queued or in flight)."""
    async with open_runtime(settings, migrate=False) as runtime, runtime.sessions() as session:
        query = select(func.count()).where(OutboxMessage.status.in_(("queued", "sending")))
        return int(await session.scalar(query) or 0)


async def deliver(
    settings: Settings,
    server: BotApiServer,
    recipients: int,
    kill_at: float | None,
    setup: Setup,
) -> dict[str, Any]:
    """Run the worker until every row is finished; kill it once at `kill_at` of the way."""
    workers = [await start_worker(settings, server, setup)]
    first_send: float | None = None
    last_send = 0.0
    last_count = 0
    all_but_one_percent: float | None = None
    parent = psutil.Process()
    parent_cpu = sum(parent.cpu_times()[:2])
    killed_after: int | None = None
    deadline = time.perf_counter() + 3600
    next_check = 0.0
    while time.perf_counter() < deadline:
        await asyncio.sleep(POLL)
        workers[-1].sample()
        now = time.perf_counter()
        sent = server.sent_count
        if sent and first_send is None:
            first_send = now
        if sent != last_count:
            last_send, last_count = now, sent
        if all_but_one_percent is None and sent >= recipients * 0.99:
            all_but_one_percent = now
        if kill_at is not None and killed_after is None and sent >= recipients * kill_at:
            workers[-1].process.send_signal(signal.SIGKILL)
            await workers[-1].process.wait()
            killed_after = sent
            workers.append(await start_worker(settings, server, setup))
        if sent >= recipients and now >= next_check:
            next_check = now + 1.0
            if await open_rows(settings) == 0:
                break
    for worker in workers:
        if worker.process.returncode is None:
            worker.process.send_signal(signal.SIGTERM)
            await worker.process.wait()
    start = first_send or 0.0
    return {
        "first_send": start,
        "last_send": last_send,
        "seconds_to_99_percent": round((all_but_one_percent or last_send) - start, 2),
        "killed_after_sent": killed_after,
        "peak_rss_mb": [round(worker.peak_rss / 2**20, 1) for worker in workers],
        "worker_cpu_seconds": round(sum(worker.cpu_seconds for worker in workers), 1),
        "server_cpu_seconds": round(sum(parent.cpu_times()[:2]) - parent_cpu, 1),
    }


def count_at_server(server: BotApiServer, chat_ids: list[int]) -> dict[str, Any]:
    per_chat = Counter(message.chat_id for message in server.sent_messages(token=TOKEN))
    statuses = Counter(call.status for call in server.calls if call.method == "sendMessage")
    wanted = set(chat_ids)
    return {
        "delivered_chats": len(wanted & set(per_chat)),
        "lost": len(wanted - set(per_chat)),
        "duplicates": sum(count - 1 for count in per_chat.values() if count > 1),
        "unexpected_chats": len(set(per_chat) - wanted),
        "http_429": statuses.get(429, 0),
        "http_502": statuses.get(502, 0),
        "requests": sum(statuses.values()),
    }


async def one_run(
    database: str, recipients: int, kill_at: float | None, setup: Setup | None = None
) -> dict[str, Any]:
    setup = setup or Setup()
    async with fresh_database(database) as settings:
        chat_ids, fan_out_seconds = await prepare(settings, recipients)
        server = BotApiServer(flood_limits=setup.flood, transient_failure_rate=TRANSIENT, seed=9)
        async with server:
            server.add_bot(TOKEN)
            for chat_id in chat_ids:
                server.add_user(chat_id)
            timing = await deliver(settings, server, recipients, kill_at, setup)
            counts = count_at_server(server, chat_ids)
        async with (
            open_runtime(settings, migrate=False) as runtime,
            runtime.sessions() as session,
        ):
            rows = await session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            )
            statuses = {str(status): int(count) for status, count in rows.all()}
    seconds = max(1e-9, timing["last_send"] - timing["first_send"])
    rate = counts["delivered_chats"] / seconds
    return {
        "database": database,
        "sender": setup.sender,
        "time_scale": setup.time_scale,
        "recipients": recipients,
        "killed_at": kill_at,
        "fan_out_seconds": round(fan_out_seconds, 2),
        "delivery_seconds": round(seconds, 2),
        "seconds_to_99_percent": timing["seconds_to_99_percent"],
        "messages_per_second": round(rate, 1),
        "enforced_limit_per_second": setup.enforced,
        "fraction_of_limit": round(rate / setup.enforced, 3),
        **counts,
        "outbox_rows_by_status": statuses,
        "killed_after_sent": timing["killed_after_sent"],
        "worker_peak_rss_mb": timing["peak_rss_mb"],
        "worker_cpu_seconds": timing["worker_cpu_seconds"],
        "bench_and_server_cpu_seconds": timing["server_cpu_seconds"],
    }


async def run(
    database: str, recipients: int, small: int, kill: bool, real_time: int
) -> dict[str, Any]:
    runs = [await one_run(database, small, None), await one_run(database, recipients, None)]
    if kill:
        runs.append(await one_run(database, recipients, 0.5))
    if real_time:
        runs.append(await one_run(database, real_time, None, Setup("telegram", 1.0)))
    small_rss, large_rss = runs[0]["worker_peak_rss_mb"][0], runs[1]["worker_peak_rss_mb"][0]
    growth = (large_rss - small_rss) / small_rss
    return {
        "setup": {
            "flood_limits": {
                "overall_per_second": Setup().flood.overall_per_second,
                "private_chat_per_second": Setup().flood.private_chat_per_second,
                "time_scale": TIME_SCALE,
                "real_time_run": "time_scale 1, TelegramSender",
            },
            "transient_failure_rate": TRANSIENT,
            "worker": "tests/scale_runner.py: OutboxWorker + BotApiSender (aiohttp), or "
            "TelegramSender (PTB) in the real-time run",
            "lease_seconds": LEASE_SECONDS,
        },
        "runs": runs,
        "memory": {
            "small_recipients": small,
            "large_recipients": recipients,
            "small_peak_rss_mb": small_rss,
            "large_peak_rss_mb": large_rss,
            "growth": round(growth, 3),
            "target_within": 0.10,
            "met": abs(growth) <= 0.10,
        },
        "summary": {
            "database": database,
            "rate_fraction_of_limit": [item["fraction_of_limit"] for item in runs],
            "duplicates": [item["duplicates"] for item in runs],
            "lost": [item["lost"] for item in runs],
            "peak_rss_mb": [item["worker_peak_rss_mb"] for item in runs],
            "memory_growth_small_to_large": round(growth, 3),
        },
    }
