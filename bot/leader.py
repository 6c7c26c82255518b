"""Leadership among instances on one database: only the leader runs the scheduler.

On PostgreSQL the leader is the process that holds a session-level advisory lock
(`pg_try_advisory_lock`) on a connection of its own, open for as long as it leads. When
that process dies, PostgreSQL ends its session and so frees the lock; a standby, trying
again every few seconds, takes it over. On SQLite there is one instance by design, and it
is always the leader: `one_instance` makes a second `sicherheitsbot run` on the same
database file refuse to start (an exclusive lock on a file beside it, freed by the
operating system when the process ends, however it ends).

Advisory locks are per database (not per schema): deployments that share one database
need different keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# The same constant in every instance of the bot: the ASCII of "sb:sched" as a bigint.
SCHEDULER_LOCK = int.from_bytes(b"sb:sched", "big")
RETRY_SECONDS = 5.0
# A check that hangs (a dead network) counts as a lost lock after this long.
CHECK_TIMEOUT = 10.0

_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND objsubid = 1"
    " AND classid = CAST(CAST(:high AS bigint) AS oid)"
    " AND objid = CAST(CAST(:low AS bigint) AS oid)"
)


class Leadership:
    """This process's claim to lead: the advisory lock and the connection that holds it."""

    def __init__(self, database_url: str, key: int = SCHEDULER_LOCK) -> None:
        self.url = database_url
        self.key = key
        self.exclusive = make_url(database_url).get_backend_name() == "postgresql"
        self.held = False
        self.attempts = 0
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process leads now."""
        self.attempts += 1
        if not self.exclusive:
            self.held = True
            return True
        if self._connection is not None:
            return await self.still_held()
        if self._engine is None:
            # Its own unpooled connection: the lock lives and dies with it.
            self._engine = create_async_engine(self.url, poolclass=NullPool)
        connection: AsyncConnection | None = None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                connection = await self._engine.connect()
                got = await connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                )
                # End the transaction (never idle in one); the session-level lock stays.
                await connection.commit()
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            log.warning("leadership: cannot reach the database: %s", exc)
            got = False
        if got and connection is not None:
            self._connection = connection
        elif connection is not None:
            await _close(connection)
        self.held = bool(got)
        return self.held

    async def still_held(self) -> bool:
        """Whether the lock's session is alive and holds it (False once it is lost)."""
        if not self.exclusive:
            return self.held
        connection = self._connection
        if connection is None:
            return False
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                count = await connection.scalar(
                    _HELD, {"high": self.key >> 32, "low": self.key & 0xFFFFFFFF}
                )
                await connection.commit()
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            log.warning("leadership: lost the lock's connection: %s", exc)
            count = 0
        if not count:
            await self.release()
        return self.held

    async def release(self) -> None:
        """Give the lock up (closing its session frees it) and close the connection."""
        self.held = False
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close(connection)

    async def close(self) -> None:
        await self.release()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


class AnotherInstance(RuntimeError):
    """A second instance on a database that serves one."""


@contextlib.contextmanager
def one_instance(database_url: str) -> Iterator[None]:
    """On SQLite: hold an exclusive lock beside the database file while serving, or raise
    AnotherInstance. On PostgreSQL several instances are fine: nothing to hold."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    path = Path(url.database).with_suffix(".run.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise AnotherInstance(
                f"another `sicherheitsbot run` serves {url.database}; SQLite serves one "
                "instance (use PostgreSQL for several)"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def _close(connection: AsyncConnection) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await connection.close()
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        log.debug("leadership: closing the lock's connection failed: %s", exc)


async def keep_leading(
    leadership: Leadership,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    retry_seconds: float = RETRY_SECONDS,
) -> None:
    """Until cancelled: `start` whenever this process becomes the leader, `stop` when it
    loses the lock (or is cancelled). A standby tries again every `retry_seconds`."""
    leading = False
    said_standby = False
    try:
        while True:
            if leading and not await leadership.still_held():
                log.warning("leadership lost: stopping the scheduler here")
                leading = False
                await stop()
            elif not leading and await leadership.try_acquire():
                log.info("leadership taken: running the scheduler here")
                leading = True
                try:
                    await start()
                except Exception:
                    # Leading without a scheduler would leave every instance without one.
                    log.exception("the scheduler failed to start; giving the leadership up")
                    leading = False
                    await stop()
                    await leadership.release()
            elif not leading and not said_standby:
                log.info("standby: another instance runs the scheduler")
                said_standby = True
            await asyncio.sleep(retry_seconds)
    finally:
        if leading:
            await stop()
        await leadership.close()
