"""The Telegram test bot: a Bot API test server and the transports started on it, as
`sicherheitsbot run` starts them (fixtures `server` and `bot`, registered in conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from bot.delivery.outbox import OutboxWorker
from bot.delivery.pacing import Limits
from bot.runtime import Runtime
from bot.transports.telegram import TelegramTransport
from tests.peers.botapi import BotApiServer

TOKEN = "123:TEST"
USER = 4242
COORDINATOR_ID = 7070
GROUP = -1009876543210
# Most tests run with loose limits so that a dialogue does not wait a second per message;
# the tests about timing use the production limits.
FAST = Limits(1000, 100)


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    """A fresh Bot API server; the bot reads all group messages (privacy mode off), so the
    transport's own group filter is what keeps it quiet there."""
    peer = BotApiServer(webhook_retry_delay=0.02)
    peer.add_bot(TOKEN, can_read_all_group_messages=True)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


class Harness:
    """Starts transports with their outbox workers, as `sicherheitsbot run` does."""

    def __init__(self, runtime: Runtime, server: BotApiServer) -> None:
        self.runtime = runtime
        self.server = server
        self.running: list[tuple[TelegramTransport, asyncio.Task[None]]] = []

    async def start(
        self, runtime: Runtime | None = None, limits: Limits | None = FAST, **telegram: Any
    ) -> TelegramTransport:
        runtime = runtime or self.runtime
        settings = runtime.settings.telegram
        settings.enabled = True
        settings.token = SecretStr(TOKEN)
        settings.base_url = self.server.base_url
        settings.base_file_url = self.server.base_file_url
        settings.coordinators = [COORDINATOR_ID]
        settings.coordinator_chat_id = GROUP
        for key, value in telegram.items():
            setattr(settings, key, value)
        transport = TelegramTransport(runtime, limits=limits)
        await transport.start()
        worker = OutboxWorker(runtime.sessions, transport.sender, transport.limits)
        self.running.append((transport, asyncio.create_task(worker.run_forever(idle=0.05))))
        return transport

    async def stop(self) -> None:
        while self.running:
            transport, worker = self.running.pop()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await transport.stop()


@pytest.fixture
async def bot(runtime: Runtime, server: BotApiServer) -> AsyncIterator[Harness]:
    harness = Harness(runtime, server)
    try:
        yield harness
    finally:
        await harness.stop()
