"""What every benchmark shares: the machine, the commit, fresh databases, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings, load_settings
from bot.runtime import Runtime, open_runtime

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
POSTGRES_URL = os.environ.get(
    "SICHERHEITSBOT_BENCH_DATABASE_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/sicherheitsbot_bench",
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        memory = int(first[1]) // 1024
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "memory_mb": memory,
        "python": platform.python_version(),
    }


def speed_probe() -> float:
    """Milliseconds of CPU a fixed pure-Python loop takes here now (the best of three): the
    same shared vCPU has run it in 130 to 200 ms within one hour, and a run's CPU per input
    moves with it."""

    def once() -> float:
        started, total = time.process_time(), 0
        for number in range(3_000_000):
            total += number * number % 7
        return time.process_time() - started

    return round(1000 * min(once() for _ in range(3)), 1)


def commit() -> dict[str, Any]:
    """The git commit measured, and whether the working tree differed from it."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return ""
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def record(name: str, results: dict[str, Any]) -> Path:
    """Write one benchmark's results with machine, date and commit; returns the file."""
    now = dt.datetime.now(dt.UTC)
    document = {
        "benchmark": name,
        "date": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "git": commit(),
        **results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{now:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


def check_loopback(url: str) -> None:
    """Benchmarks talk to 127.0.0.1 only."""
    host = make_url(url).host
    if host is not None and host not in LOOPBACK:
        raise SystemExit(f"refusing {host}: benchmarks use local databases only")


async def fresh_postgres(url: str) -> None:
    """Create the benchmark database if needed and give it an empty public schema."""
    check_loopback(url)
    parsed = make_url(url)
    admin = create_async_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as connection:
        exists = await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        )
        if not exists:
            await connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    await admin.dispose()
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[Settings]:
    """Settings on an empty, migrated database: "sqlite" (a temporary file) or "postgres"."""
    with tempfile.TemporaryDirectory(prefix="sicherheitsbot-bench-") as directory:
        settings = load_settings()
        settings.bot.data_dir = Path(directory)
        settings.telegram.enabled = False
        settings.matrix.enabled = False
        if kind == "postgres":
            await fresh_postgres(POSTGRES_URL)
            settings.database.url = POSTGRES_URL
        else:
            settings.database.url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        yield settings


@asynccontextmanager
async def runtime_on(kind: str) -> AsyncIterator[Runtime]:
    async with fresh_database(kind) as settings, open_runtime(settings) as runtime:
        yield runtime


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]
