"""SQLite for the async engine without a thread: statements run on the event loop's thread.

aiosqlite runs every call (cursor, execute, fetch, close, commit) in a thread of its own
and hands the result back through the event loop: about 0.2 ms a call, over a millisecond
per update of the bot, several times what SQLite itself needs. The bot's SQLite is one
process's database on a local disk in WAL mode, where a statement takes microseconds, so
this connection calls `sqlite3` directly, in the shape SQLAlchemy's aiosqlite dialect
expects (`create_async_engine(..., async_creator=...)`: awaitables that are done at once).

The engine keeps ONE such connection (see `bot.storage.db`): transactions of the process
take turns at the pool, so one never waits for another's lock on the loop's thread. Another
process's write lock (a CLI command) is waited for up to SQLite's busy timeout, which blocks
the loop and is therefore 50 ms (`bot.storage.db.BUSY_TIMEOUT_MS`); past it the statement
fails as busy and the caller tries again after an asyncio sleep.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any


class Cursor:
    """An aiosqlite-shaped cursor over a `sqlite3.Cursor`."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Immediate:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's dialect uses to set
    `isolation_level`: the request is carried out at once."""

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class Connection:
    """An aiosqlite-shaped connection over a `sqlite3.Connection`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection  # None once closed
        self._tx = _Immediate()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate)."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def creator(database: str, busy_timeout: float) -> Callable[[], Awaitable[Connection]]:
    """The `async_creator` for `create_async_engine`: opens `database` (a path or
    ":memory:") as pysqlite would for SQLAlchemy's SQLite dialects."""

    async def connect() -> Connection:
        connection = sqlite3.connect(
            database,
            timeout=busy_timeout,
            detect_types=0,
            # The pool may close it from the garbage collector's thread.
            check_same_thread=False,
        )
        return Connection(connection)

    return connect
