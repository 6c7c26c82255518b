"""Faults: a locked database is waited out, a dead one gets an apology, a platform outage
stops only that platform.

The lock is real: on SQLite a second connection holds `BEGIN EXCLUSIVE`; on PostgreSQL it
holds `LOCK TABLE users IN ACCESS EXCLUSIVE MODE` while the bot's sessions give up after a
short `lock_timeout`. The platforms are small fakes (a platform cannot be made to fail
otherwise); the core, the outbox worker, `serve()` and the database are real.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from bot.config import Settings
from bot.core.events import Reply
from bot.core.faults import transient
from bot.core.router import CommandSpec
from bot.delivery.outbox import TransientFailure
from bot.delivery.pacing import Limits
from bot.runtime import Runtime
from bot.storage import db, repos
from bot.storage.db import transaction
from bot.storage.models import DialogueState, OutboxMessage, Report
from tests.chat import Chat
from tests.test_kill import until
from tests.test_report import quick_report, start_report

WAIT_MS = 100  # how long the bot's connection waits for a lock before it reports failure


def short_lock_waits(runtime: Runtime) -> None:
    """New connections of the bot give up on a held lock after WAIT_MS."""
    sqlite = runtime.engine.dialect.name == "sqlite"
    statement = f"PRAGMA busy_timeout={WAIT_MS}" if sqlite else f"SET lock_timeout = {WAIT_MS}"

    def configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # a SET inside a transaction that is rolled back is undone

    event.listen(runtime.engine.sync_engine, "connect", configure)


@asynccontextmanager
async def database_locked(runtime: Runtime) -> AsyncIterator[None]:
    """Another client holds the database (SQLite) or the users table (PostgreSQL)."""
    await runtime.engine.dispose()  # pooled connections reconnect with short waits
    url = make_url(runtime.settings.database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("COMMIT")
            holder.close()
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    transaction_ = connection.transaction()
    await transaction_.start()
    await connection.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction_.rollback()
        await connection.close()


async def counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        reports = await session.scalar(select(func.count()).select_from(Report))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    return int(reports or 0), int(outbox or 0)


def test_which_failures_are_worth_another_attempt() -> None:
    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    def dbapi(state: str) -> DBAPIError:
        return DBAPIError("SELECT 1", None, Orig(state))

    assert transient(OperationalError("SELECT 1", None, Exception("database is locked")))
    for state in ("55P03", "40001", "40P01", "57P01", "08006"):
        assert transient(dbapi(state)), state
    assert transient(ConnectionRefusedError())
    assert not transient(dbapi("22021"))  # bad data: trying again cannot help
    assert not transient(IntegrityError("INSERT", None, Orig("23505")))
    assert not transient(ValueError("a bug"))


async def test_a_briefly_locked_database_is_waited_out(
    chat: Chat, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    short_lock_waits(runtime)
    await chat.onboard()
    with caplog.at_level(logging.WARNING, logger="bot.core.app"):
        async with database_locked(runtime):
            answer = asyncio.create_task(chat.send("/myreports"))
            await asyncio.sleep(0.5)
            assert not answer.done()  # waiting, not answered with something unsaved
        replies = await asyncio.wait_for(answer, 10)
    assert "noch keine Meldungen" in replies[0].text or replies[0].choices
    assert "database busy" in caplog.text  # it failed for real, and was tried again


async def test_a_database_that_stays_locked_gets_an_apology_and_nothing_is_confirmed(
    chat: Chat, runtime: Runtime
) -> None:
    short_lock_waits(runtime)
    await start_report(chat)
    await quick_report(chat)
    assert "bitte prüfen" in chat.screen.lower()
    async with database_locked(runtime):
        replies = await chat.press("Anonym senden")
    apology = runtime.content.text("de", "core.storage_failed", emergency="110")
    assert [reply.text for reply in replies] == [apology]
    assert all("SP-" not in reply.text for reply in replies)
    assert await counts(runtime) == (0, 0)  # no report, nothing queued for coordinators
    # The summary is still there: sending again once the database is back works, once.
    await chat.send("/report")
    assert "bitte prüfen" in chat.screen.lower()
    await chat.press("Anonym senden")
    assert "SP-" in chat.screen
    assert await counts(runtime) == (1, 1)


async def drop_connections(runtime: Runtime) -> int:
    """What a restart of the PostgreSQL server does to the bot's pooled connections."""
    url = make_url(runtime.settings.database_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return int(dropped)


@pytest.mark.postgres_only
@pytest.mark.parametrize("rested", [False, True])
async def test_connections_the_server_dropped_cost_the_person_nothing(
    chat: Chat,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    rested: bool,
) -> None:
    """A connection in steady use is not checked before each event (three round trips on
    asyncpg): if the server dropped it, the event's first attempt fails and the next one,
    on a new connection, succeeds. One that rested in the pool is checked first."""
    await start_report(chat)
    await quick_report(chat)
    if rested:
        monkeypatch.setattr(db, "REST_SECONDS", 0.0)
    assert await drop_connections(runtime) >= 1
    with caplog.at_level(logging.WARNING, logger="bot.core.pipeline"):
        await chat.press("Anonym senden")
    assert "SP-" in chat.screen
    assert await counts(runtime) == (1, 1)
    # Checked after resting: no failed attempt; in steady use: one, then the answer.
    assert ("database busy" in caplog.text) is not rested


async def test_a_failing_handler_stores_nothing_and_apologises(
    chat: Chat, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(context: Any) -> None:
        context.start_flow("rep", {"half": "done"})
        context.say("this must never be shown")
        raise RuntimeError("a bug")

    await chat.onboard()
    runtime.core.commands["broken"] = CommandSpec("broken", broken)
    with caplog.at_level(logging.ERROR, logger="bot.core.app"):
        replies = await chat.send("/broken")
    assert [r.text for r in replies] == [
        runtime.content.text("de", "core.storage_failed", emergency="110")
    ]
    assert "failed" in caplog.text
    async with runtime.sessions() as session:
        state = await session.scalar(select(DialogueState))
    assert state is not None and state.flow == ""


# -- a platform outage ------------------------------------------------------------------------


class FakeSender:
    def __init__(self, transport: str, failing: bool = False) -> None:
        self.transport = transport
        self.failing = failing
        self.sent: list[tuple[str, str]] = []

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        if self.failing:
            raise TransientFailure("platform down")
        self.sent.append((chat_id, replies[0].text))
        return str(len(self.sent))


class FakeTransport:
    def __init__(self, name: str, sender: FakeSender, start_fails: bool = False) -> None:
        self.name = name
        self.sender = sender
        self.limits = Limits(overall_per_second=100.0, per_chat_per_second=100.0)
        self.start_fails = start_fails
        self.stopped = False

    async def start(self) -> None:
        if self.start_fails:
            raise ConnectionError("platform unreachable")

    async def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("outage", ["start_fails", "sending_fails"])
async def test_a_platform_outage_does_not_stop_the_other(
    runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch, outage: str
) -> None:
    from bot import service

    down = FakeTransport(
        "down",
        FakeSender("down", failing=outage == "sending_fails"),
        start_fails=outage == "start_fails",
    )
    up = FakeTransport("up", FakeSender("up"))
    monkeypatch.setattr(service, "enabled_transports", lambda _runtime: [down, up])
    async with transaction(runtime.sessions) as session:
        for transport in ("down", "up"):
            for index in range(3):
                await repos.queue_outbox(
                    session,
                    transport=transport,
                    chat_id=f"chat{index}",
                    user_id=None,
                    kind="alert",
                    replies=[Reply(f"{transport} {index}")],
                )
    stop = asyncio.Event()
    serving = asyncio.create_task(service.serve(settings, stop))

    async def done() -> bool:
        tried = outage == "start_fails" or await attempted(runtime, "down")
        return len(up.sender.sent) == 3 and tried

    try:
        await until(done, within=20)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 20)
    assert sorted(text for _, text in up.sender.sent) == ["up 0", "up 1", "up 2"]
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.transport == "down"))
        ).all()
    # Nothing for the broken platform was lost: it waits in the outbox for its return.
    assert len(rows) == 3 and all(row.status in ("queued", "sending") for row in rows)
    if outage == "sending_fails":
        assert all(row.attempts == 1 and row.last_error == "platform down" for row in rows)
    assert up.stopped and down.stopped == (outage == "sending_fails")


async def attempted(runtime: Runtime, transport: str) -> bool:
    async with runtime.sessions() as session:
        tried = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.transport == transport, OutboxMessage.attempts > 0)
        )
    return tried == 3
