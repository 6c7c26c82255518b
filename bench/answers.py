"""Answers at the platform's speed (issue 16): people at once, and people during an alert.

`sicherheitsbot run` runs in its own process (one core), polling the Bot API test server in
this one, which enforces Telegram's flood limits in real time: one message a second per
private chat after a burst of three, 20 a minute per group, and 30 a second overall for
bulk messages — messages to chats that have not written to the bot in the last ten seconds
(Telegram: "bulk notifications"; an answer to someone who just wrote is not one).

- **load**: K people at once, each walking 17 inputs (onboarding, a short report, tips,
  the silent-alarm guide, the menu) and answering as soon as the bot answered. Measured
  per input: the time from the input reaching the server to the bot's answer there; inputs
  per second; the bot's CPU. Afterwards: K reports, no duplicate.
- **broadcast**: an alert to 10,000 people sent by the outbox worker while people walk the
  same journey. Measured: the answers' latency, and the alert's rate against the limit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil  # type: ignore[import-untyped]
from sqlalchemy import func, select

from bench.common import ROOT, fresh_database, speed_probe
from bot.config import Settings
from bot.runtime import open_runtime
from bot.storage.models import OutboxMessage, Report
from handlers.alert_fanout import fan_out
from tests.crowd import add_alert, add_telegram_users
from tests.peers.botapi import BotApiServer, FloodLimits, SentMessage

TOKEN = "5151:ANSWERS"
COORDINATOR = 9_000_001
FIRST_PERSON = 10_000_000
FIRST_RECIPIENT = 70_000_000
EXEMPT_SECONDS = 10.0
# A private chat takes up to three messages at once, then one a second (an assumption:
# Telegram documents "short bursts", not their size; the bot sends no more either).
BURST = 3
WAIT = 60.0

# One person's 17 inputs: (what, argument). "press" presses the button whose label
# contains the argument on the last message with buttons.
JOURNEY: tuple[tuple[str, str], ...] = (
    ("text", "/start"), ("press", "✅"), ("press", "Lkw"), ("press", "Köln"),
    ("text", "/report"), ("press", "Nein"), ("text", "Zwei Männer schlitzen Planen auf"),
    ("location", ""), ("press", "Überspringen"), ("press", "Anonym senden"),
    ("text", "/myreports"), ("text", "/tips"), ("press", "Ladungsdiebstahl"),
    ("press", "Weiter"), ("text", "/alarm"), ("press", "Weiter"), ("text", "/menu"),
)  # fmt: skip


@dataclass
class Person:
    chat: int
    latencies: list[float] = field(default_factory=list)
    messages: int = 0  # messages the bot sent to the person (edits not counted)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Seen:
    """What a person had seen when they gave an input."""

    messages: int
    pressed: SentMessage | None = None
    edits: int = 0


def seen(server: BotApiServer, chat: int, pressed: SentMessage | None = None) -> Seen:
    count = len(server.messages_to(chat, token=TOKEN))
    return Seen(count, pressed, len(pressed.history) if pressed is not None else 0)


def answered(server: BotApiServer, chat: int, before: Seen) -> bool:
    """The answer is there: a new message, or the pressed message turned to the next page
    (edited, with buttons; a tick "✓ label" that takes the buttons away is not an answer)."""
    if len(server.messages_to(chat, token=TOKEN)) > before.messages:
        return True
    pressed = before.pressed
    return (
        pressed is not None and len(pressed.history) > before.edits and bool(pressed.inline_buttons)
    )


def labelled(server: BotApiServer, chat: int, label: str) -> tuple[SentMessage, str] | None:
    """The newest message with a button whose label contains `label`, and its data."""
    for message in reversed(server.messages_to(chat, token=TOKEN)):
        for found in message.inline_buttons:
            if label.casefold() in str(found["text"]).casefold():
                return message, str(found["callback_data"])
    return None


def has_label(server: BotApiServer, chat: int, label: str) -> bool:
    return labelled(server, chat, label) is not None


async def walk(server: BotApiServer, person: Person, think: float = 0.0) -> None:
    """The journey, answering `think` seconds after the bot answered (0: at once): the
    latency of an input is the time from sending it to the answer's arrival (see
    `answered`)."""
    chat = person.chat
    for step, (kind, argument) in enumerate(JOURNEY):
        if step and think:
            await asyncio.sleep(think)
        if kind == "press":
            # A button may come by an edit just after its message (the location keyboard
            # was removed first): wait for it, as a person would.
            try:
                await server.wait_in_chat(chat, partial(has_label, server, chat, argument), WAIT)
            except TimeoutError:
                person.errors.append(f"no button {argument!r}")
                return
            found = labelled(server, chat, argument)
            assert found is not None
            before = seen(server, chat, found[0])
            started = time.perf_counter()
            server.press(chat, found[0].message_id, found[1], token=TOKEN)
        elif kind == "location":
            before = seen(server, chat)
            started = time.perf_counter()
            server.send_location(chat, 51.1435, 7.0267, token=TOKEN)
        else:
            before = seen(server, chat)
            started = time.perf_counter()
            server.send_text(chat, argument, token=TOKEN)
        try:
            await server.wait_in_chat(chat, partial(answered, server, chat, before), WAIT)
        except TimeoutError:
            person.errors.append(f"no answer to {kind} {argument}")
            return
        person.latencies.append(time.perf_counter() - started)


def count_messages(server: BotApiServer, people: list[Person]) -> None:
    """Every message each person got (call when the bot is done): one per answer is best."""
    for person in people:
        person.messages = len(server.messages_to(person.chat, token=TOKEN))


def config(settings: Settings, server: BotApiServer, path: Path) -> Path:
    path.write_text(
        f'[bot]\ndata_dir = "{settings.bot.data_dir}"\n'
        f'[database]\nurl = "{settings.database_url}"\n'
        '[web]\nlisten = ""\n'
        f"[telegram]\nenabled = true\ncoordinators = [{COORDINATOR}]\n"
        f'base_url = "{server.base_url}"\nbase_file_url = "{server.base_file_url}"\n',
        encoding="utf-8",
    )
    return path


async def start_bot(settings: Settings, server: BotApiServer) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    env["SICHERHEITSBOT_TELEGRAM__TOKEN"] = TOKEN
    path = config(settings, server, settings.bot.data_dir.parent / "answers.toml")
    settings.bot.data_dir.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--log-level", "warning", "run", "--config", str(path),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    # The coordinator opened the bot once (a bot may write only to people who did).
    server.send_text(COORDINATOR, "/help", token=TOKEN)
    await server.wait_for_message(COORDINATOR, None, WAIT, token=TOKEN)
    return process


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(people: list[Person], seconds: float) -> dict[str, Any]:
    latencies = [value for person in people for value in person.latencies]
    return {
        "people": len(people),
        "inputs": len(latencies),
        "inputs_per_second": round(len(latencies) / seconds, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=0.0) * 1000, 1),
        "messages_per_input": round(
            sum(person.messages for person in people) / max(1, len(latencies)), 2
        ),
        # Where the time goes along the journey (people who walked it all).
        "latency_p95_ms_per_step": [
            round(percentile(list(step), 0.95) * 1000)
            for step in zip(*(p.latencies for p in people if not p.errors), strict=True)
        ],
        "errors": sorted({error for person in people for error in person.errors})[:10],
        "people_with_errors": sum(1 for person in people if person.errors),
    }


async def count_reports(settings: Settings) -> tuple[int, int]:
    async with (
        open_runtime(settings, migrate=False) as runtime,
        runtime.sessions() as session,
    ):
        total = int(await session.scalar(select(func.count()).select_from(Report)) or 0)
        distinct = int(
            await session.scalar(select(func.count(func.distinct(Report.reference)))) or 0
        )
    return total, distinct


def own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def cpu(process: asyncio.subprocess.Process) -> float:
    try:
        times = psutil.Process(process.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


async def load(database: str, k: int, think: float) -> dict[str, Any]:
    """K people at once, 17 inputs each."""
    limits = FloodLimits(replies_exempt_seconds=EXEMPT_SECONDS, private_chat_burst=BURST)
    probe = speed_probe()
    async with fresh_database(database) as settings:
        server = BotApiServer(flood_limits=limits)
        async with server:
            server.add_bot(TOKEN)
            bot = await start_bot(settings, server)
            try:
                people = [Person(FIRST_PERSON + index) for index in range(k)]
                busy_before, here_before = cpu(bot), own_cpu()
                started = time.perf_counter()
                await asyncio.gather(*(walk(server, person, think) for person in people))
                seconds = time.perf_counter() - started
                busy, here = cpu(bot) - busy_before, own_cpu() - here_before
                await asyncio.sleep(2)  # the last parts of answers, if any
                count_messages(server, people)
            finally:
                bot.send_signal(signal.SIGTERM)
                await bot.wait()
            statuses = Counter(call.status for call in server.calls)
        reports, distinct = await count_reports(settings)
    return {
        "database": database,
        "think_seconds": think,
        **summary(people, seconds),
        "seconds": round(seconds, 1),
        "bot_cpu_share": round(busy / seconds, 2),
        "bot_cpu_ms_per_input": round(1000 * busy / max(1, len(people) * len(JOURNEY)), 2),
        # The Bot API server and the people, in this process: near 1.0, it is the limit.
        "server_and_people_cpu_share": round(here / seconds, 2),
        "reports": reports,
        "duplicate_references": reports - distinct,
        "http_429": statuses.get(429, 0),
        # The machine's load (1 minute) when the run ended: above 2 on these 2 cores, other
        # work shared them.
        "load_average": round(os.getloadavg()[0], 2),
        # The machine's speed just before the run (bench.common.speed_probe; less is faster).
        "speed_probe_ms": probe,
    }


async def under_broadcast(
    database: str, recipients: int, people: int, think: float
) -> dict[str, Any]:
    """People walk the journey while an alert goes to `recipients`."""
    limits = FloodLimits(replies_exempt_seconds=EXEMPT_SECONDS, private_chat_burst=BURST)
    probe = speed_probe()
    async with fresh_database(database) as settings:
        async with open_runtime(settings) as runtime:
            chat_ids = await add_telegram_users(runtime.sessions, recipients, FIRST_RECIPIENT)
            alert = await add_alert(runtime.sessions)
            tz = ZoneInfo(settings.bot.timezone)
            await fan_out(runtime.sessions, runtime.content, tz, alert)
        server = BotApiServer(flood_limits=limits)
        async with server:
            server.add_bot(TOKEN)
            for chat_id in chat_ids:
                server.add_user(chat_id)
            bot = await start_bot(settings, server)
            walkers: list[Person] = []
            try:
                wanted = set(chat_ids)

                def alerts_sent() -> int:
                    # Cheap enough to ask after every message: all sends, less the others.
                    others = [COORDINATOR, *(person.chat for person in walkers)]
                    return server.sent_count - sum(
                        len(server.messages_to(chat, token=TOKEN)) for chat in others
                    )

                # Once the alert flows, people come in waves of `people`, each walking the
                # journey, until the alert is out.
                await server.wait_until(lambda: alerts_sent() > 0, WAIT)
                wave = 0
                while alerts_sent() < recipients * 0.9:
                    group = [
                        Person(FIRST_PERSON + wave * people + index) for index in range(people)
                    ]
                    walkers.extend(group)
                    await asyncio.gather(*(walk(server, person, think) for person in group))
                    wave += 1
                await server.wait_until(lambda: alerts_sent() >= recipients, 2 * WAIT)
            finally:
                bot.send_signal(signal.SIGTERM)
                await bot.wait()
            alerts = [m for m in server.sent_messages(token=TOKEN) if m.chat_id in wanted]
            count_messages(server, walkers)
            times = sorted(message.received for message in alerts)
            per_chat = Counter(message.chat_id for message in alerts)
        async with (
            open_runtime(settings, migrate=False) as runtime,
            runtime.sessions() as session,
        ):
            rows = await session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.kind == "alert")
                .group_by(OutboxMessage.status)
            )
            statuses = {str(status): int(count) for status, count in rows.all()}
    span = max(1e-9, times[-1] - times[0])
    rate = (len(times) - 1) / span
    answered = summary(walkers, span)
    return {
        "database": database,
        "recipients": recipients,
        "people_per_wave": people,
        "think_seconds": think,
        "answers": answered,
        "alert_messages_per_second": round(rate, 2),
        "alert_fraction_of_limit": round(rate / limits.overall_per_second, 3),
        "alert_lost": len(set(chat_ids) - set(per_chat)),
        "alert_duplicates": sum(count - 1 for count in per_chat.values() if count > 1),
        "alert_outbox_rows": statuses,
        "alert_seconds": round(span, 1),
        # The machine's load (1 minute) when the run ended: above 2 on these 2 cores, other
        # work shared them.
        "load_average": round(os.getloadavg()[0], 2),
        "speed_probe_ms": probe,
    }


async def run(
    databases: list[str], ks: list[int], recipients: int, people: int, think: float = 0.0
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "setup": {
            "journey_inputs": len(JOURNEY),
            "flood_limits": "Telegram's, real time: 1/s per private chat after a burst of "
            f"{BURST} (at most {BURST} in any {BURST} s), 20/min per group, 30/s overall for "
            f"chats that did not write in the last {EXEMPT_SECONDS:g} s",
            "bot": "sicherheitsbot run (polling) in its own process",
            "think_seconds": think,
            "load_average": [round(value, 2) for value in os.getloadavg()],
        },
        "load": [],
        "broadcast": [],
    }
    for database in databases:
        for k in ks:
            results["load"].append(await load(database, k, think))
        if recipients:
            results["broadcast"].append(await under_broadcast(database, recipients, people, think))
    results["summary"] = {
        "load": [
            {key: item[key] for key in ("database", "people", "think_seconds", "inputs_per_second",
                                        "latency_p50_ms", "latency_p95_ms", "reports",
                                        "duplicate_references", "people_with_errors",
                                        "bot_cpu_ms_per_input", "speed_probe_ms")}
            for item in results["load"]
        ],
        "broadcast": [
            {
                "database": item["database"],
                "answer_p50_ms": item["answers"]["latency_p50_ms"],
                "answer_p95_ms": item["answers"]["latency_p95_ms"],
                "alert_fraction_of_limit": item["alert_fraction_of_limit"],
                "alert_lost": item["alert_lost"],
                "alert_duplicates": item["alert_duplicates"],
            }
            for item in results["broadcast"]
        ],
    }  # fmt: skip
    return results
