"""Nothing twice, nothing lost: one person's events on one instance or two (issue 15).

Two runtimes on one PostgreSQL database stand for two instances behind a load balancer:
each has its own engine, connections and per-process locks, so only the database can keep
one person's events apart. A repeat of a platform update id is dropped on any database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.core.events import Event, EventKind
from bot.runtime import Runtime, open_runtime
from bot.storage.models import ConversationEntry, HandledEvent, Report
from tests.chat import Chat
from tests.conftest import POSTGRES_URL

TRIALS = 10


@pytest.fixture
async def second(settings: Settings) -> AsyncIterator[Runtime]:
    """Another instance on the same database."""
    async with open_runtime(settings, migrate=False) as runtime:
        yield runtime


def pressed(user: str, choice: str, update_id: str) -> Event:
    return Event(
        "console", user, user, EventKind.CHOICE, choice=choice, platform_event_id=update_id
    )


def typed(user: str, text: str, update_id: str) -> Event:
    return Event("console", user, user, EventKind.TEXT, text=text, platform_event_id=update_id)


async def at_the_summary(runtime: Runtime, user: str) -> None:
    chat = Chat(runtime.core, user)
    await chat.onboard()
    for line in ("/report", "2", "Plane aufgeschlitzt", "Rastplatz A3", "/skip"):
        await chat.send(line)
    assert "bitte prüfen" in chat.screen.lower()


async def count_reports(runtime: Runtime, user: str | None = None) -> int:
    async with runtime.sessions() as session:
        query = select(func.count()).select_from(Report)
        return int(await session.scalar(query) or 0)


@pytest.mark.postgres_only
async def test_a_double_tap_on_send_at_two_instances_stores_one_report(
    runtime: Runtime, second: Runtime
) -> None:
    assert POSTGRES_URL  # two instances share one PostgreSQL database
    for trial in range(TRIALS):
        user = f"tap{trial}"
        await at_the_summary(runtime, user)
        # Two updates (a double tap), one at each instance, at once.
        first, other = await asyncio.gather(
            runtime.core.handle(pressed(user, "rep:~ok:anonymous", f"{trial}a")),
            second.core.handle(pressed(user, "rep:~ok:anonymous", f"{trial}b")),
        )
        confirmed = [r for r in (*first, *other) if "SP-" in r.text]
        assert len(confirmed) == 1, trial  # the other tap found no draft: a toast
    assert await count_reports(runtime) == TRIALS


@pytest.mark.postgres_only
async def test_two_quick_answers_at_two_instances_are_both_kept(
    runtime: Runtime, second: Runtime
) -> None:
    for trial in range(TRIALS):
        user = f"quick{trial}"
        chat = Chat(runtime.core, user)
        await chat.onboard()
        for line in ("/report", "2", "Verdächtiger Transporter", "Autohof Lippetal", "/skip"):
            await chat.send(line)
        await chat.press("Einzelheiten ergänzen")
        await chat.press("Überspringen")  # when
        await chat.press("Personen")
        await chat.send("2")  # how many
        for _ in range(4):
            await chat.press("Überspringen")  # sex, age, height, build: now at "hair"
        # Hair and clothing typed quickly, each answer reaching another instance.
        await asyncio.gather(
            runtime.core.handle(typed(user, f"dunkle Haare {trial}", f"{trial}h")),
            second.core.handle(typed(user, f"rote Jacke {trial}", f"{trial}c")),
        )
        await chat.send("/summary")
        await chat.press("Anonym senden")
        async with runtime.sessions() as session:
            report = await session.scalar(select(Report).order_by(Report.id.desc()))
        assert report is not None
        given = {report.answers.get("hair"), report.answers.get("clothing")}
        assert given == {f"dunkle Haare {trial}", f"rote Jacke {trial}"}, report.answers


@pytest.mark.postgres_only
async def test_a_repeated_update_at_two_instances_is_handled_once(
    runtime: Runtime, second: Runtime
) -> None:
    chat = Chat(runtime.core, "repeat")
    await chat.onboard()
    repeat = typed("repeat", "/tips", "update-777")
    answers = await asyncio.gather(runtime.core.handle(repeat), second.core.handle(repeat))
    assert sorted(len(replies) for replies in answers) == [0, 1]


async def test_a_repeated_update_is_dropped_before_any_handler(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "driver")
    await chat.onboard()
    await chat.send("/report")
    event = typed("driver", "2", "update-42")  # "not happening now", delivered twice
    assert await runtime.core.handle(event)
    assert await runtime.core.handle(event) == []  # the repeat: no answer, no effect
    await chat.send("Rastplatz A3")  # still the answer to the category question
    async with runtime.sessions() as session:
        logged = await session.scalar(
            select(func.count())
            .select_from(ConversationEntry)
            .where(ConversationEntry.text == "2", ConversationEntry.direction == "in")
        )
        recorded = await session.scalar(select(func.count()).select_from(HandledEvent))
    assert logged == 1 and recorded == 1
    assert "Wo war das?" in chat.screen or "Foto" in chat.screen
