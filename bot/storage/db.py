"""Engine, sessions and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
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
# How long a statement waits for another process's write lock (on the loop's thread).
BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
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
        return engine
    return create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
    )


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
