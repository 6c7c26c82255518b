"""Engine, sessions and migrations."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool

from bot.storage import inline_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"
# How long a statement waits for another process's write lock. The wait runs on the event
# loop's thread, where it would stall every person: kept short, and a longer lock is
# waited for between attempts (the event pipeline retries the transaction with asyncio
# sleeps; see bot/core/pipeline.py), while other work goes on.
BUSY_TIMEOUT_MS = 50
# Set in a connection's info by `make_durable`: sync the WAL when the connection is back.
DURABLE = "sicherheitsbot.durable"
# A PostgreSQL connection back from the pool after resting this long is checked first (a
# restarted server, a cut network); one in steady use is not (see `_ping_when_rested`).
REST_SECONDS = 10.0
_RESTED = "sicherheitsbot.rested_since"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # A commit reaches the WAL file, not the disk: a power failure may lose the last ones
    # (never corrupt the database). Where that matters, `make_durable`.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, echo: bool = False) -> AsyncEngine:
    """An async engine. SQLite: one connection, called on the event loop's thread
    (`bot.storage.inline_sqlite`), with WAL, a busy timeout and foreign keys.

    Statement parameters are people's texts, places and plates: they never appear in an
    error's message or traceback, nor in the echo (`hide_parameters`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,
            async_creator=inline_sqlite.creator(database, BUSY_TIMEOUT_MS / 1000),
            # One connection: the process's transactions take turns at the pool rather
            # than at SQLite's lock, which would be waited for on the loop's thread.
            poolclass=StaticPool if database == ":memory:" else AsyncAdaptedQueuePool,
            **({} if database == ":memory:" else {"pool_size": 1, "max_overflow": 0}),
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if database != ":memory:":
            event.listen(engine.sync_engine.pool, "checkin", _sync_when_durable(database))
        return engine
    engine = create_async_engine(
        url, echo=echo, hide_parameters=True, pool_size=10, max_overflow=10
    )
    event.listen(engine.sync_engine.pool, "checkin", _resting)
    event.listen(engine.sync_engine.pool, "checkout", _ping_when_rested)
    return engine


def _resting(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_RESTED] = time.monotonic()


def _ping_when_rested(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Check a connection that rested in the pool before it is used: SQLAlchemy's
    `pool_pre_ping` checks every one, which on asyncpg is three round trips (BEGIN, a
    ping, ROLLBACK) before each event's own six. A connection in steady use is not
    checked; if the server went away meanwhile, the first statement fails, SQLAlchemy
    drops every older connection of the pool, and the event pipeline tries the event
    again whole (`bot.core.faults.transient`)."""
    rested = record.info.get(_RESTED)
    if rested is None or time.monotonic() - rested < REST_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise exc.DisconnectionError("the database connection was lost") from error


async def make_durable(session: AsyncSession) -> None:
    """This transaction's commit must survive a power failure: it hands out something a
    person will rely on (a report's reference). SQLite (WAL, synchronous=NORMAL) syncs the
    WAL to disk after the commit, before the connection is used again — what
    synchronous=FULL does for every commit, for this one; PostgreSQL waits for its WAL
    flush even if the server's default says not to."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SET LOCAL synchronous_commit TO on"))
    else:
        connection.info[DURABLE] = True


def _sync_when_durable(database: str) -> Callable[[Any, Any], None]:
    """A pool `checkin` listener: the connection is back, its transaction committed (or
    rolled back); if it asked for durability, sync the WAL (the database file if there is
    none). Runs before the event's replies are shown."""
    wal = f"{database}-wal"

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is None or not record.info.pop(DURABLE, False):
            return
        path = wal if os.path.exists(wal) else database
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    return checkin


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; runs Alembic in a worker thread."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session, session.begin():
        yield session
