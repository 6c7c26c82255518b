"""SIGKILL at the worst moments: mid-dialogue, mid-submission, mid-delivery.

The terminal chat is the real command line (`python -m bot.cli chat --db FILE --user NAME`)
fed through a pipe line by line; the outbox worker runs in its own process
(tests/outbox_runner.py) and sends to a counting HTTP server in this test.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from bot.core.events import Reply
from bot.delivery.outbox import BATCHES_IN_FLIGHT
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage
from tests import outbox_runner

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"SP-\d{4}-\d{6}")
ONBOARD = ["/start", "1", "1", "1", "4"]  # German, consent, truck driver, Köln
# Not urgent, cargo theft, a place, no motorway, just now, nothing seen, no text, no files,
# anonymous: the summary.
TO_SUMMARY = ["/report", "2", "3", "Rastplatz A3", "/skip", "1", "4", "/skip", "/skip", "2"]


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Wait until `check()` holds, polling."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Process:
    """A child process whose output is collected as it comes."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.args = args
        self.cwd = cwd
        self.output = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def start(self) -> Process:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.cwd,
            env=clean_env(),
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.output += self._decoder.decode(chunk)

    async def wait_for(self, text: str, since: int = 0) -> None:
        async def arrived() -> bool:
            if self.proc.returncode is not None and text not in self.output[since:]:
                raise AssertionError(f"exited, waiting for {text!r}:\n{self.output}")
            return text in self.output[since:]

        try:
            await until(arrived)
        except AssertionError as exc:
            raise AssertionError(f"no {text!r} in:\n{self.output[-2000:]}") from exc

    async def write(self, *lines: str) -> int:
        """Send lines; return where their answers begin in the output."""
        assert self.proc.stdin is not None
        mark = len(self.output)
        self.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
        await self.proc.stdin.drain()
        return mark

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL
        await self._reader

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 30)
        await self._reader
        assert "Traceback" not in self.output, self.output


async def terminal(tmp_path: Path, db: Path, user: str) -> Process:
    args = ("-m", "bot.cli", "chat", "--user", user, "--db", str(db))
    return await Process(*args, cwd=tmp_path).start()


def reports_of(db: Path, user: str) -> list[str]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT r.reference FROM reports r JOIN users u ON r.user_id = u.id "
            "WHERE u.platform_id = ?",
            (user,),
        ).fetchall()
    return [row[0] for row in rows]


async def test_killed_in_the_middle_of_a_dialogue_it_continues_after_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bot.db"
    chat = await terminal(tmp_path, db, "driver")
    mark = await chat.write(*ONBOARD, "/report", "2", "3")
    await chat.wait_for("Wo war das?", mark)
    await chat.kill()

    again = await terminal(tmp_path, db, "driver")
    mark = await again.write("Rastplatz Ohligser Heide")
    await again.wait_for("War es an einer Autobahn?", mark)
    await again.close()
    assert reports_of(db, "driver") == []


async def test_killed_right_after_confirming_a_report_never_stores_it_twice(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bot.db"
    outcomes = []
    for index, delay in enumerate((0.0, 0.003, 0.01, 0.03, 0.1, 1.0)):
        user = f"driver{index}"
        chat = await terminal(tmp_path, db, user)
        mark = await chat.write(*ONBOARD, *TO_SUMMARY)
        await chat.wait_for("[1] 📨 Meldung senden", mark)
        mark = await chat.write("1")  # [1] Send report
        await asyncio.sleep(delay)
        await chat.kill()
        seen = REFERENCE.findall(chat.output[mark:])
        stored = reports_of(db, user)
        assert len(stored) <= 1
        # What the reporter was told is stored; nothing is stored twice.
        assert set(seen) <= set(stored)
        outcomes.append(len(stored))

        # After a restart the same "1" either sends the summary still waiting, or (when
        # the report went through) opens the list of reports: one report either way.
        again = await terminal(tmp_path, db, user)
        mark = await again.write("1")
        await again.wait_for("SP-", mark)
        await again.close()
        assert len(reports_of(db, user)) == 1
    assert outcomes[-1] == 1  # a second later it is surely through
    with sqlite3.connect(db) as connection:
        [(total,)] = connection.execute("SELECT count(*) FROM reports").fetchall()
        [(distinct,)] = connection.execute("SELECT count(DISTINCT reference) FROM reports")
    assert total == distinct == 6


class CountingServer:
    """Counts what arrives per message; answers slowly, so a kill lands mid-batch."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.counts[body["row"]] += 1
        await asyncio.sleep(0.05)
        return web.json_response({"id": sum(self.counts.values())})

    def received(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return sum(self.counts.values()) >= count

        return check

    async def __aenter__(self) -> CountingServer:
        app = web.Application()
        app.router.add_post("/send", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.runner.cleanup()


async def all_sent(runtime: Runtime) -> bool:
    return set((await statuses(runtime)).values()) == {"sent"}


async def statuses(runtime: Runtime) -> dict[str, str]:
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    # A sent row keeps no text; message m<i> went to chat<i>.
    return {f"m{row.chat_id.removeprefix('chat')}": row.status for row in rows}


async def test_outbox_worker_killed_mid_delivery_delivers_everything_once(
    runtime: Runtime, tmp_path: Path
) -> None:
    messages = [f"m{index}" for index in range(150)]
    async with transaction(runtime.sessions) as session:
        for index, text in enumerate(messages):
            await repos.queue_outbox(
                session,
                transport="http",
                chat_id=f"chat{index}",
                user_id=None,
                kind="alert",
                replies=[Reply(text)],
            )
    url = runtime.settings.database_url
    async with CountingServer() as server:
        args = ("-m", "tests.outbox_runner", url, str(server.port))
        worker = await Process(*args, cwd=ROOT).start()
        await until(server.received(40))
        await worker.kill()
        before = await statuses(runtime)
        in_flight = {text for text, status in before.items() if status == "sending"}
        assert 0 < sum(1 for s in before.values() if s == "sent") < len(messages)

        worker = await Process(*args, cwd=ROOT).start()
        await until(lambda: all_sent(runtime), within=60)
        await asyncio.sleep(0.3)  # anything sent twice would have arrived by now
        await worker.kill()

    assert set(server.counts) == set(messages)  # every message delivered
    twice = {text for text, count in server.counts.items() if count > 1}
    # Only the batches in flight at the kill may arrive twice; nothing arrives three times.
    assert twice <= in_flight and len(in_flight) <= outbox_runner.BATCH * BATCHES_IN_FLIGHT
    assert max(server.counts.values()) <= 2
