"""`sicherheitsbot run` with the terminal as the only transport, and one instance per
SQLite database (issue 15: (b) and (d))."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}


async def healthy(port: int, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as client:
        for _ in range(300):
            if process.returncode is not None:
                raise AssertionError("sicherheitsbot run exited")
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("never ready")


def jobs_in(database: Path) -> set[str]:
    try:
        with sqlite3.connect(database) as connection:
            return {row[0] for row in connection.execute("SELECT id FROM apscheduler_jobs")}
    except sqlite3.OperationalError:  # not created yet
        return set()


async def scheduled(database: Path) -> None:
    """Wait until the scheduler has stored its jobs: it runs in this deployment."""
    for _ in range(300):
        if {"daily_digest", "report_reminders", "daily_purge"} <= jobs_in(database):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the scheduler never stored its jobs")


async def test_run_serves_a_terminal_deployment_and_a_second_run_is_refused(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[bot]\ndata_dir = "{tmp_path / "data"}"\n[web]\nlisten = "127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "bot.cli", "run", "--config", str(config)]
    first = await asyncio.create_subprocess_exec(
        *command, env=environment(), cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        await healthy(port, first)  # no chat platform: the scheduler and health run
        await scheduled(tmp_path / "data" / "sicherheitsbot.db")
        second = await asyncio.create_subprocess_exec(
            *command, env=environment(), cwd=tmp_path, stderr=asyncio.subprocess.PIPE
        )
        _, error = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode != 0
        line = error.decode().strip().splitlines()[-1]  # after its INFO start line
        assert line.startswith("Error: another `sicherheitsbot run` serves")
        assert "PostgreSQL" in line and "Traceback" not in error.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        _, error = await asyncio.wait_for(first.communicate(), 60)
    assert first.returncode == 0, error.decode()[-2000:]
    assert "Traceback" not in error.decode()
