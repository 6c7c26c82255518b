"""Abuse limits: the per-person flood limit, and input that is too long or too much."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from bot.core.events import Event, EventKind
from bot.core.limits import FloodGate, Verdict
from bot.runtime import Runtime
from bot.storage.models import ConversationEntry, Report
from tests.chat import Chat
from tests.test_alerts import add_user
from tests.test_report import quick_report_until_media, start_report


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def logged(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(ConversationEntry))
    return int(count or 0)


def test_flood_gate_is_a_sliding_window() -> None:
    clock = Clock()
    gate = FloodGate(lambda: 3, window=60.0, clock=clock)
    key = ("console", "x")
    assert [gate.admit(key) for _ in range(3)] == [Verdict.ADMIT] * 3
    assert gate.admit(key) is Verdict.WARN
    assert gate.admit(key) is Verdict.DROP
    clock.now += 30
    assert gate.admit(key) is Verdict.DROP  # the three are still inside the window
    clock.now += 30.5
    assert gate.admit(key) is Verdict.ADMIT  # the oldest ones have left it
    assert gate.admit(("console", "y")) is Verdict.ADMIT  # per person


def test_flood_gate_forgets_people_who_went_quiet() -> None:
    clock = Clock()
    gate = FloodGate(lambda: 3, window=60.0, clock=clock)
    for index in range(FloodGate.SWEEP_EVERY - 1):
        gate.admit(("console", f"u{index}"))
    assert len(gate) == FloodGate.SWEEP_EVERY - 1
    clock.now += 61
    gate.admit(("console", "last"))
    assert len(gate) == 1


async def test_over_the_limit_told_once_then_silence_until_the_window_passes(
    runtime: Runtime,
) -> None:
    runtime.settings.limits.messages_per_minute = 5
    clock = runtime.core.flood.clock = Clock()
    await add_user(runtime, "eve", role="other", region="koeln", language="en")
    eve, bob = Chat(runtime.core, "eve"), Chat(runtime.core, "bob")
    for _ in range(5):
        assert (await eve.send("/tips"))[0].choices
    stored = await logged(runtime)
    [notice] = await eve.send("/tips")
    # In the person's language, without reading the database.
    assert notice.text == runtime.content.text(
        "en", "core.throttled", emergency="110", seconds=60
    )  # what is not read, and for how long
    assert await eve.send("/report") == []
    assert await eve.press_id("tip:~all") == []
    assert await logged(runtime) == stored  # throttled events were not routed or stored
    assert (await bob.send("/tips"))[0].choices  # others are not affected
    clock.now += 61
    assert (await eve.send("/tips"))[0].choices


async def test_a_burst_at_once_is_counted_exactly(runtime: Runtime) -> None:
    runtime.settings.limits.messages_per_minute = 5
    runtime.core.flood.clock = Clock()
    chat = Chat(runtime.core, "burst")
    answers = await asyncio.gather(*(chat.send("/alarm") for _ in range(20)))
    handled = [replies for replies in answers if replies and replies[0].choices]
    assert len(handled) == 5
    assert sum(1 for replies in answers if replies == []) == 14


def test_the_terminal_stays_quiet_while_throttled(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    env["SICHERHEITSBOT_LIMITS__MESSAGES_PER_MINUTE"] = "3"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--user", "flood", "--db", "f.db"],
        input="/alarm\n" * 8,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sehr viele Nachrichten") == 1
    assert result.stdout.count("(1/6) ==") == 3 and "Traceback" not in result.stderr


async def test_too_long_text_and_arguments_are_refused_with_a_hint(chat: Chat) -> None:
    await start_report(chat)
    limit = 2000
    [answer] = await chat.send("y" * (limit + 1))
    assert f"höchstens {limit}" in answer.lead
    assert "gerade jetzt" in answer.text  # the question again, so the dialogue goes on
    await chat.send("/triage " + "9" * (limit + 1))
    assert f"höchstens {limit}" in chat.screen


async def test_forged_long_choice_and_out_of_range_numbers_get_a_hint(chat: Chat) -> None:
    await start_report(chat)
    replies = await chat.press_id("rep:urgent:" + "n" * 100)
    assert "gilt nicht mehr" in replies[0].text and "gerade jetzt" in chat.screen
    for typed in ("4", "99", "0", "9" * 1999, "9" * 5000, "²"):  # [3] is "cancel"
        replies = await chat.send(typed)
        assert replies and "gerade jetzt" in chat.screen, typed
    await chat.send("2")  # the same question still takes a valid answer
    assert "Was haben Sie beobachtet?" in chat.screen


async def test_files_beyond_the_limit_are_not_taken(
    chat: Chat, runtime: Runtime, tmp_path: Path
) -> None:
    runtime.settings.limits.max_attachments = 2
    photos = []
    for index in range(3):
        photo = tmp_path / f"p{index}.jpg"
        photo.write_bytes(b"\xff\xd8\xff" + bytes([index]) * 50)
        photos.append(photo)
    await start_report(chat)
    await quick_report_until_media(chat)
    await chat.send(f"/photo {photos[0]}")
    assert "bitte prüfen" in chat.screen.lower()  # one photo: on to the summary
    await chat.send(f"/photo {photos[1]}")  # more files join at the summary
    assert "2 Datei(en) angehängt" in chat.screen and "Anonym senden" in " ".join(chat.labels)
    await chat.send(f"/photo {photos[2]}")
    assert "Mehr als 2 Dateien" in chat.screen and "Anonym senden" in " ".join(chat.labels)
    await chat.press("Anonym senden")
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and len(report.answers["media"]) == 2


async def test_events_with_unusable_ids_are_dropped(runtime: Runtime) -> None:
    for user, chat_id in (("", "c"), ("x" * 300, "c"), ("a\x00b", "c"), ("u", "")):
        event = Event("console", chat_id, user, EventKind.TEXT, text="hallo")
        assert await runtime.core.handle(event) == []
    assert await logged(runtime) == 0
