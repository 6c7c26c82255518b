"""An outbox worker in its own process, sending over HTTP to a test server (tests/test_kill.py).

    python -m tests.outbox_runner DATABASE_URL PORT

Sends every queued row of transport "http" to http://127.0.0.1:PORT/send as
{"row": <text of the first reply>, "chat_id": ...}; runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import aiohttp

from bot.core.events import Reply
from bot.delivery.outbox import OutboxWorker, TransientFailure
from bot.delivery.pacing import Limits
from bot.storage.db import create_engine, session_factory

BATCH = 10
LEASE_SECONDS = 2.0  # on PostgreSQL a dead worker's rows fall due again after this


class HttpSender:
    transport = "http"

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.url = f"http://127.0.0.1:{port}/send"

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        try:
            async with self.http.post(
                self.url, json={"row": replies[0].text, "chat_id": chat_id}
            ) as response:
                if response.status >= 500:
                    raise TransientFailure(f"HTTP {response.status}")
                return str((await response.json())["id"])
        except aiohttp.ClientError as exc:
            raise TransientFailure(str(exc)) from exc


async def main(url: str, port: int) -> None:
    engine = create_engine(url)
    async with aiohttp.ClientSession() as http:
        worker = OutboxWorker(
            session_factory(engine),
            HttpSender(http, port),
            Limits(overall_per_second=1000.0, per_chat_per_second=1000.0),
            batch=BATCH,
            lease_seconds=LEASE_SECONDS,
        )
        print("running", flush=True)
        await worker.run_forever(idle=0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
