"""The per-person flood limit: a sliding window of the events a person sent.

Why in memory, not in the database: the limit protects this process and the database
from one person's burst, so it must cost nothing per event — a throttled event never
touches the database. What is lost on a restart is at most one minute of history, so
someone can send one extra window's worth after a restart. With several instances behind
a load balancer each instance counts on its own, so a person may get up to N times the
limit through N instances; that is still bounded, and the limits that must hold exactly
(reports per hour) are counted in the database.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    ADMIT = "admit"  # handle the event
    WARN = "warn"  # the first event over the limit: answer once that it is too much
    DROP = "drop"  # silence until the window has passed


@dataclass
class _Window:
    times: deque[float] = field(default_factory=deque)
    warned: bool = False
    language: str = ""


class FloodGate:
    """At most `limit()` admitted events per person within `window` seconds."""

    SWEEP_EVERY = 1000

    def __init__(
        self,
        limit: Callable[[], int],
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._calls = 0

    def admit(self, key: tuple[str, str]) -> Verdict:
        """Count an event of `key` (transport, user id) and say what to do with it.

        Synchronous on purpose: check and count happen without a pause in between, so
        concurrent events of one person cannot all slip through."""
        now = self.clock()
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._sweep(now)
        record = self._windows.setdefault(key, _Window())
        while record.times and record.times[0] <= now - self.window:
            record.times.popleft()
        if len(record.times) < self.limit():
            record.times.append(now)
            record.warned = False
            return Verdict.ADMIT
        if record.warned:
            return Verdict.DROP
        record.warned = True
        return Verdict.WARN

    def seconds_left(self, key: tuple[str, str]) -> float:
        """How long until the person's next event is read again."""
        record = self._windows.get(key)
        if record is None or not record.times:
            return 0.0
        return max(0.0, record.times[0] + self.window - self.clock())

    def remember_language(self, key: tuple[str, str], language: str) -> None:
        """The person's language, for the one throttle notice (which reads no database)."""
        record = self._windows.get(key)
        if record is not None:
            record.language = language

    def language(self, key: tuple[str, str]) -> str:
        record = self._windows.get(key)
        return record.language if record is not None else ""

    def _sweep(self, now: float) -> None:
        """Forget people whose window is empty: memory stays proportional to who is active."""
        idle = [
            key
            for key, record in self._windows.items()
            if not record.times or record.times[-1] <= now - self.window
        ]
        for key in idle:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)
