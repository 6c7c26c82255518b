"""/healthz (the process answers) and /readyz (it can do its work), for balancers.

Readiness is three checks: the database answers `SELECT 1` in time, every enabled
transport says it is connected, and no due outbox message of those transports (alerts
aside: a large one waits its turn) has waited longer than `web.max_outbox_lag_seconds`.
The answer names each check's state, never a person, a text or an address.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)
# A balancer probes every few seconds: a check that takes longer than this has failed.
CHECK_TIMEOUT = 2.0


class Connection(Protocol):
    """What readiness asks a transport."""

    @property
    def name(self) -> str: ...

    @property
    def connected(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: its name, whether it passed, and a short word on its state."""

    name: str
    ok: bool
    state: str


class Readiness:
    """The checks behind /readyz."""

    def __init__(
        self,
        engine: AsyncEngine,
        transports: Sequence[Connection],
        max_outbox_lag: timedelta | None,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.engine = engine
        self.transports = transports
        self.max_outbox_lag = max_outbox_lag
        self.timeout = timeout

    async def checks(self) -> list[Check]:
        database = await self._database()
        found = [database, *(_transport(transport) for transport in self.transports)]
        if self.max_outbox_lag is not None:
            lag = self.max_outbox_lag
            found.append(await self._outbox_lag(lag) if database.ok else _unknown_lag())
        return found

    async def _database(self) -> Check:
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except TimeoutError:
            return Check("database", False, "no answer in time")
        except Exception as exc:  # whatever the driver raises: not ready, and say which
            log.warning("readiness: database unreachable: %s", _kind(exc))
            return Check("database", False, f"unreachable ({_kind(exc)})")
        return Check("database", True, "answers")

    async def _outbox_lag(self, limit: timedelta) -> Check:
        """How long the oldest due message of these transports has waited."""
        names = [transport.name for transport in self.transports]
        now = utcnow()
        query = select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status.in_(("queued", "sending")),
            OutboxMessage.transport.in_(names),
            OutboxMessage.next_attempt_at <= now,
            # An alert to 100,000 people legitimately waits its turn for an hour at
            # Telegram's 30 a second; reports, notices and queued answers must not.
            OutboxMessage.kind != "alert",
        )
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as connection:
                oldest = await connection.scalar(query)
        except Exception as exc:  # as above: a failed query is a failed check
            return Check("outbox_lag", False, f"not measured ({_kind(exc)})")
        lag = timedelta(0) if oldest is None else now - oldest  # UTCDateTime: aware
        seconds = max(0, int(lag.total_seconds()))
        return Check("outbox_lag", lag <= limit, f"{seconds} s")


def _transport(transport: Connection) -> Check:
    connected = transport.connected
    return Check(f"transport:{transport.name}", connected, "connected" if connected else "down")


def _kind(error: BaseException) -> str:
    """The class of the first cause (SQLAlchemy wraps the driver's): a name, no message."""
    while error.__cause__ is not None:
        error = error.__cause__
    return type(error).__name__


def _unknown_lag() -> Check:
    return Check("outbox_lag", False, "not measured (no database)")


READINESS = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """200 when every readiness check passes, else 503; the body names each check."""
    checks = await request.app[READINESS].checks()
    ready = all(check.ok for check in checks)
    body = {
        "ready": ready,
        "failed": [check.name for check in checks if not check.ok],
        "checks": {check.name: check.state for check in checks},
    }
    return web.json_response(body, status=200 if ready else 503)
