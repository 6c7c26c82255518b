"""Another process's write lock on the SQLite database (a CLI command) never freezes the
bot: it is waited for between attempts, while the event loop goes on (issue 14, finding 8)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.runtime import Runtime
from tests.chat import Chat

# PostgreSQL has no database-wide file lock: this is SQLite's (run in its pass).
pytestmark = pytest.mark.sqlite_only


class ForeignLock:
    """A write lock held by another connection (as another process would), in a thread."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.taken = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        connection = sqlite3.connect(self.database, timeout=10, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        self.taken.set()
        self.release.wait(30)
        connection.execute("ROLLBACK")
        connection.close()

    async def __aenter__(self) -> ForeignLock:
        self.thread.start()
        assert await asyncio.to_thread(self.taken.wait, 10)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release.set()
        await asyncio.to_thread(self.thread.join, 10)


def database_of(runtime: Runtime) -> Path:
    name = make_url(runtime.settings.database_url).database
    assert name is not None
    return Path(name)


async def test_a_foreign_write_lock_is_waited_out_without_blocking_the_loop(
    runtime: Runtime,
) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    try:
        async with ForeignLock(database_of(runtime)) as lock:
            answer = asyncio.create_task(driver.send("/alarm"))
            before = len(ticks)
            await asyncio.sleep(0.5)  # the lock is held; the event waits for it
            assert not answer.done()
            assert len(ticks) - before >= 10, "the event loop stood still"
            lock.release.set()
            replies = await answer
    finally:
        ticking.cancel()
    assert replies and "In Gefahr" in replies[0].text  # handled, not an apology


async def test_a_lock_that_stays_gets_an_apology_and_nothing_is_kept(runtime: Runtime) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    runtime.core.pipeline.attempts, runtime.core.pipeline.retry_delay = 3, 0.05
    async with ForeignLock(database_of(runtime)):
        [apology] = await driver.send("/report")
    assert "nicht gespeichert" in apology.text and "110" in apology.text
    await driver.send("/menu")
    assert "Was möchten Sie tun?" in driver.screen  # nothing of the refused event was kept
