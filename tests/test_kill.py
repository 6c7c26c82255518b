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
from typing import Any

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
ONBOARD = ["/start", "1", "1", "4"]  # consent, truck driver, Köln
# Not urgent, in own words, a place, no photo: the summary.
TO_SUMMARY = ["/report", "2", "Plane aufgeschlitzt", "Rastplatz A3", "/skip"]


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
    mark = await chat.write(*ONBOARD, "/report", "2", "3", "/skip")
    await chat.wait_for("Wo war das?", mark)
    await chat.kill()

    again = await terminal(tmp_path, db, "driver")
    mark = await again.write("Rastplatz Ohligser Heide")
    await again.wait_for("Ein Foto, Video", mark)
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
        await chat.wait_for("[1] 📨 Senden – Rückfragen erlaubt", mark)
        mark = await chat.write("1")  # [1] Send
        await asyncio.sleep(delay)
        await chat.kill()
        seen = REFERENCE.findall(chat.output[mark:])
        stored = reports_of(db, user)
        assert len(stored) <= 1
        # What the reporter was told is stored; nothing is stored twice.
        assert set(seen) <= set(stored)
        outcomes.append(len(stored))

        # After a restart the same "1" either sends the summary still waiting, or (when
        # the report went through) opens its details: one report either way.
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


async def start_telegram_bot(tmp_path: Path, base_url: str, file_url: str) -> Any:
    """`sicherheitsbot run` polling the Bot API test server, in its own process."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[bot]\ndata_dir = "{tmp_path / "data"}"\n[web]\nlisten = ""\n'
        f"[telegram]\nenabled = true\ncoordinators = [9001]\n"
        f'base_url = "{base_url}"\nbase_file_url = "{file_url}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    env["SICHERHEITSBOT_TELEGRAM__TOKEN"] = TELEGRAM_TOKEN
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--config", str(config),
        env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


TELEGRAM_TOKEN = "555:KILLTEST"


async def test_killed_after_answering_before_telegram_heard_it_answers_once(
    tmp_path: Path,
) -> None:
    from tests.peers.botapi import BotApiServer

    server = BotApiServer()
    server.add_bot(TELEGRAM_TOKEN)
    await server.start()
    try:
        bot = await start_telegram_bot(tmp_path, server.base_url, server.base_file_url)
        server.send_text(4242, "/start")
        await server.wait_for_message(4242, lambda m: True, timeout=60)
        # From now on no poll reaches Telegram: what the bot fetches stays unacknowledged.
        server.hold_polls()
        update = server.send_text(4242, "/help")["update_id"]
        await server.wait_for_message(4242, lambda m: "/report" in (m.plain_text or ""), 60)
        bot.kill()  # handled and answered; its next poll never got through
        await bot.wait()
        server.hold_polls(False)
        assert update in [u["update_id"] for u in server.pending_updates()]  # comes again

        again = await start_telegram_bot(tmp_path, server.base_url, server.base_file_url)
        try:
            await until_acknowledged(server, update)
            # One person's updates are handled in order: once this is answered, the
            # repeat before it has been handled (or dropped) too.
            server.send_text(4242, "/alarm")
            await server.wait_for_message(4242, lambda m: "110" in (m.plain_text or ""), 60)
        finally:
            again.send_signal(signal.SIGTERM)
            await asyncio.wait_for(again.wait(), 60)
        helps = [m for m in server.messages_to(4242) if "/report" in (m.plain_text or "")]
        assert len(helps) == 1  # the repeat was recognised and dropped
    finally:
        await server.stop()


async def until_acknowledged(server: Any, update_id: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while update_id in [u["update_id"] for u in server.pending_updates()]:
        if time.monotonic() > deadline:
            raise AssertionError(f"update {update_id} was never fetched again")
        await asyncio.sleep(0.1)
