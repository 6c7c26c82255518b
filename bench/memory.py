"""Memory: resident size of a bot process with many people and open dialogues stored.

The database is filled first (people straight through the ORM; the open dialogues are
copies of a real report dialogue half way through). Then a fresh process
(`python -m bench.memory --probe`) loads the runtime, handles a few events — menus for
people without a dialogue, the next answer for people in one — and reports its resident
memory at each stage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from sqlalchemy import select

from bench.common import ROOT, fresh_database
from bot.config import Settings, load_settings
from bot.core.events import Event, EventKind
from bot.runtime import open_runtime
from bot.storage.models import DialogueState, User
from tests.crowd import add_dialogues, add_telegram_users

FIRST_CHAT = 90_000_000
EVENTS = 20


def rss_mb() -> float:
    rss: int = psutil.Process().memory_info().rss
    return round(rss / 2**20, 1)


def command(chat: str, name: str) -> Event:
    return Event("telegram", chat, chat, EventKind.COMMAND, text=f"/{name}", command=name)


def press(chat: str, choice: str) -> Event:
    return Event("telegram", chat, chat, EventKind.CHOICE, choice=choice)


async def prepare(settings: Settings, users: int, dialogues: int) -> None:
    async with open_runtime(settings) as runtime:
        chats = await add_telegram_users(runtime.sessions, users, FIRST_CHAT)
        first = str(chats[0])
        for event in (command(first, "report"), press(first, "rep:urgent:no")):
            await runtime.core.handle(event)
        async with runtime.sessions() as session:
            template = await session.scalar(select(DialogueState))
        if template is None:
            raise RuntimeError("no dialogue state to copy")
        await add_dialogues(runtime.sessions, dialogues - 1, template)


async def probe(database_url: str, data_dir: str) -> dict[str, Any]:
    """In a fresh process: resident memory before and after loading and handling."""
    stages = {"after_imports": rss_mb()}
    settings = load_settings()
    settings.database.url = database_url
    settings.bot.data_dir = Path(data_dir)
    async with open_runtime(settings, migrate=False) as runtime:
        stages["after_runtime"] = rss_mb()
        async with runtime.sessions() as session:
            in_dialogue = (
                await session.scalars(
                    select(User.chat_id)
                    .join(DialogueState, DialogueState.user_id == User.id)
                    .limit(EVENTS // 2)
                )
            ).all()
            idle = (
                await session.scalars(
                    select(User.chat_id).order_by(User.id.desc()).limit(EVENTS // 2)
                )
            ).all()
        for chat in in_dialogue:
            await runtime.core.handle(press(chat, "rep:category:cargo_theft"))
        for chat in idle:
            await runtime.core.handle(command(chat, "menu"))
        stages["after_events"] = rss_mb()
    return {"events_handled": len(in_dialogue) + len(idle), "rss_mb": stages}


async def measure(database: str, users: int, dialogues: int) -> dict[str, Any]:
    async with fresh_database(database) as settings:
        await prepare(settings, users, dialogues)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.memory",
            "--probe",
            settings.database_url,
            str(settings.bot.data_dir),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"memory probe failed ({process.returncode})")
    result: dict[str, Any] = json.loads(output)
    return {"database": database, "users": users, "open_dialogues": dialogues, **result}


async def run(databases: list[str], users: int, dialogues: int) -> dict[str, Any]:
    runs = [await measure(database, users, dialogues) for database in databases]
    return {
        "runs": runs,
        "summary": {item["database"]: item["rss_mb"] for item in runs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the probe process of the memory benchmark")
    parser.add_argument("--probe", nargs=2, metavar=("DATABASE_URL", "DATA_DIR"), required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(probe(*args.probe))))


if __name__ == "__main__":
    main()
