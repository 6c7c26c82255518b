"""What the bot writes to its log, and what it never writes there.

The level comes from `--log-level`, else `logging.level` in the config (INFO by default).
At INFO the log says that the bot started, which transports are up, and once a minute how
many events it handled and messages it delivered, and how often a platform asked it to
wait (429). Our own lines carry ids and event kinds, never texts, places, plates, phone
numbers, names or file names, at any level.

The libraries are another matter: PTB logs every Bot API call with its parameters at
DEBUG, httpx every request URL (with the bot token in it) at INFO, matrix-nio whole sync
answers, SQLAlchemy statements with their parameters. Their loggers are held at the
floors below unless `logging.library_payloads` is set — explicitly, for a debugging
session, knowing that the log then holds people's messages and tokens.

Whatever the level, the formatter takes out what must not reach a log file: the values of
the configured secrets, and the rows PostgreSQL quotes in an error's DETAIL line
("Failing row contains (...)") — SQLAlchemy's own parameters are hidden by the engines.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterable
from typing import TextIO

from bot import metrics

log = logging.getLogger(__name__)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The level each library's logger is held at, and why lower is not written.
LIBRARY_FLOORS = {
    "telegram": logging.INFO,  # DEBUG: every Bot API call with its parameters and answer
    "httpx": logging.WARNING,  # INFO: every request URL, the bot token in its path
    "httpcore": logging.WARNING,  # DEBUG: request and response bytes
    "nio": logging.ERROR,  # DEBUG: sync answers; WARNING: schema errors quoting events
    "peewee": logging.WARNING,  # nio's key store: SQL with its parameters
    "aiohttp": logging.WARNING,  # INFO: the access log of the webhook
    "sqlalchemy": logging.WARNING,  # INFO: SQL (database.echo); DEBUG: result rows
    "alembic": logging.WARNING,  # INFO: a line per migration check at every start
    "apscheduler": logging.WARNING,  # INFO: a line per job run, every 30 s
    "asyncio": logging.WARNING,
}
ACTIVITY_SECONDS = 60.0
# PostgreSQL quotes the row or key of a failed statement on a line of its own.
_DETAIL = re.compile(r"^\s*DETAIL:.*$", re.MULTILINE)
_HIDDEN = "[hidden]"


class PrivateFormatter(logging.Formatter):
    """Formats as usual, then takes out secrets and the rows quoted by the database."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        # Longest first: a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = _DETAIL.sub(f"DETAIL: {_HIDDEN}", super().format(record))
        for secret in self.secrets:
            text = text.replace(secret, _HIDDEN)
        return text


class _OurHandler(logging.StreamHandler[TextIO]):
    """The handler `configure` installs (and replaces when called again)."""


def level_name(value: str) -> str:
    """`value` as one of LEVELS; ValueError otherwise."""
    name = value.strip().upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {value[:16]!r}; use one of {', '.join(LEVELS)}")
    return name


def hold_libraries(library_payloads: bool) -> None:
    """Set the libraries' loggers to their floors, or let them log freely if asked."""
    for name, floor in LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(logging.NOTSET if library_payloads else floor)


def configure(
    level: str,
    *,
    library_payloads: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Log at `level` to `stream` (standard error) through the private formatter."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
    handler = _OurHandler(stream or sys.stderr)
    handler.setFormatter(PrivateFormatter(FORMAT, secrets))
    root.addHandler(handler)
    root.setLevel(level_name(level))
    hold_libraries(library_payloads)
    return handler


class Activity:
    """What the bot did since the last summary: counts only, nothing about anyone."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.delivered = 0
        self.failed = 0
        self.flood_waits = 0

    def _reset(self) -> None:
        self.events.clear()
        self.delivered = self.failed = self.flood_waits = 0

    def event(self, kind: str) -> None:
        self.events[kind] += 1

    def delivery(self, delivered: int = 0, failed: int = 0) -> None:
        self.delivered += delivered
        self.failed += failed
        metrics.DELIVERIES.labels("sent").inc(delivered)
        metrics.DELIVERIES.labels("failed").inc(failed)

    def flood_wait(self) -> None:
        self.flood_waits += 1
        metrics.FLOOD_WAITS.inc()

    def take(self) -> str:
        """A one-line summary since the last one ("" if nothing happened), and reset."""
        total = sum(self.events.values())
        if not (total or self.delivered or self.failed or self.flood_waits):
            return ""
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.events.items()))
        line = (
            f"{total} events handled{f' ({kinds})' if kinds else ''}, "
            f"{self.delivered} outbox messages delivered, {self.failed} failed, "
            f"{self.flood_waits} flood waits (429)"
        )
        self._reset()
        return line


ACTIVITY = Activity()


async def report_activity(every: float = ACTIVITY_SECONDS) -> None:
    """Write the activity summary at INFO every `every` seconds; a last one when cancelled."""
    try:
        while True:
            await asyncio.sleep(every)
            if line := ACTIVITY.take():
                log.info("last minute: %s", line)
    finally:
        if line := ACTIVITY.take():
            log.info("until stop: %s", line)
