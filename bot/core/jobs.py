"""Scheduled jobs as features declare them: what runs, and when.

A feature registers its jobs with its router (`router.job(...)`), as it registers its
commands; `bot.scheduler` turns the composed jobs into APScheduler jobs and runs them on
the leader. A job gets the running bot (`bot.runtime.Runtime`) and, for a one-off job,
the arguments it was scheduled with. Nothing here imports APScheduler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True, slots=True)
class Every:
    """Runs at a fixed interval."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Daily:
    """Runs at a time of day in the deployment's time zone; `days` as cron spells them
    ("mon" for Mondays, "*" for every day). `hour` may be read from the settings."""

    hour: int | Callable[[Settings], int]
    minute: int = 0
    days: str = "*"

    def hour_in(self, settings: Settings) -> int:
        return self.hour(settings) if callable(self.hour) else self.hour


@dataclass(frozen=True, slots=True)
class Job:
    """One job: `run(runtime, *args)`. `when` None: only run when scheduled by id (a
    scheduled alert's fan-out)."""

    id: str
    run: Callable[..., Awaitable[Any]]
    when: Every | Daily | None = None
