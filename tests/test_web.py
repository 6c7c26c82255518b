"""/healthz and /readyz over real HTTP: the Telegram transport against the Bot API test
server, Matrix against Synapse, the database on SQLite or PostgreSQL, and each readiness
check made to fail."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings
from bot.runtime import Runtime, open_runtime
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage, utcnow
from bot.transports.telegram import TelegramTransport
from bot.web.server import create_app, serving
from tests.conftest import POSTGRES_URL
from tests.peers.botapi import BotApiServer
from tests.peers.synapse import SynapseServer
from tests.test_matrix import launch

if TYPE_CHECKING:
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory

TOKEN = "123:WEB"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    peer = BotApiServer()
    peer.add_bot(TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


def telegram_on(settings: Settings, server: BotApiServer) -> None:
    settings.telegram.enabled = True
    settings.telegram.token = SecretStr(TOKEN)
    settings.telegram.base_url = server.base_url
    settings.telegram.base_file_url = server.base_file_url


class Probe:
    """The bot's HTTP server on a free loopback port, and a client for it."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as client, client.get(self.base + path) as answer:
            body = await (answer.json() if path == "/readyz" else answer.text())
            return answer.status, body


@pytest.fixture
async def telegram(runtime: Runtime, server: BotApiServer) -> AsyncIterator[TelegramTransport]:
    telegram_on(runtime.settings, server)
    transport = TelegramTransport(runtime)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.stop()


async def serve_web(runtime: Runtime, transport: TelegramTransport) -> tuple[Probe, Any]:
    port = free_port()
    runtime.settings.web.listen = f"127.0.0.1:{port}"
    app = create_app(runtime.settings.web, runtime.engine, [transport])
    return Probe(port), serving(app, runtime.settings.web)


async def test_healthz_answers_and_readyz_names_every_check(
    runtime: Runtime, telegram: TelegramTransport
) -> None:
    probe, serving_web = await serve_web(runtime, telegram)
    async with serving_web:
        assert await probe.get("/healthz") == (200, "ok\n")
        status, body = await probe.get("/readyz")
    assert status == 200, body
    assert body == {
        "ready": True,
        "failed": [],
        "checks": {"database": "answers", "transport:telegram": "connected", "outbox_lag": "0 s"},
    }


async def test_readyz_fails_when_the_telegram_transport_stops(
    runtime: Runtime, telegram: TelegramTransport
) -> None:
    probe, serving_web = await serve_web(runtime, telegram)
    async with serving_web:
        await telegram.stop()
        status, body = await probe.get("/readyz")
        assert (status, body["failed"]) == (503, ["transport:telegram"])
        assert body["checks"]["transport:telegram"] == "down"
        # Alive all the same: the process answers.
        assert (await probe.get("/healthz"))[0] == 200


async def test_readyz_fails_while_a_due_outbox_message_waits_too_long(
    runtime: Runtime, telegram: TelegramTransport
) -> None:
    runtime.settings.web.max_outbox_lag_seconds = 60
    probe, serving_web = await serve_web(runtime, telegram)
    async with transaction(runtime.sessions) as session:
        # No outbox worker runs here: the message stays due, like behind a stuck worker.
        late = utcnow() - timedelta(minutes=5)
        for transport, kind, due in (
            ("telegram", "notice", late),
            ("console", "notice", late - timedelta(hours=1)),
            ("telegram", "alert", late - timedelta(hours=2)),
        ):
            session.add(
                OutboxMessage(transport=transport, chat_id="1", kind=kind, next_attempt_at=due)
            )
    async with serving_web:
        status, body = await probe.get("/readyz")
    assert (status, body["failed"]) == (503, ["outbox_lag"])
    # The terminal's rows wait for their reader by design and do not count, nor does a
    # large alert waiting its turn.
    lag = int(body["checks"]["outbox_lag"].removesuffix(" s"))
    assert 300 <= lag < 400


async def test_readyz_fails_while_the_database_gives_no_connection_in_time(
    tmp_path: Path, settings: Settings, server: BotApiServer
) -> None:
    # SQLite: one connection per process. Held by a transaction that does not end (a hung
    # handler), the database does not answer this process, and readiness says so.
    settings.database.url = f"sqlite+aiosqlite:///{tmp_path / 'held.db'}"
    async with open_runtime(settings) as runtime:
        telegram_on(runtime.settings, server)
        transport = TelegramTransport(runtime)
        await transport.start()
        try:
            probe, serving_web = await serve_web(runtime, transport)
            async with serving_web:
                assert (await probe.get("/readyz"))[0] == 200
                async with runtime.engine.connect() as held:
                    await held.execute(text("SELECT 1"))
                    status, body = await probe.get("/readyz")
                assert (status, body["failed"]) == (503, ["database", "outbox_lag"])
                assert body["checks"]["database"] == "no answer in time"
                assert (await probe.get("/readyz"))[0] == 200
        finally:
            await transport.stop()


@pytest.mark.postgres_only
async def test_readyz_fails_while_postgres_refuses_connections_and_recovers(
    settings: Settings, server: BotApiServer
) -> None:
    admin_url = make_url(POSTGRES_URL)
    name = f"{admin_url.database}_readyz"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")

    async def as_admin(statement: str) -> None:
        async with admin.connect() as connection:
            await connection.execute(text(statement))

    await as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await as_admin(f'CREATE DATABASE "{name}"')
    settings.database.url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        async with open_runtime(settings) as runtime:
            telegram_on(runtime.settings, server)
            transport = TelegramTransport(runtime)
            await transport.start()
            try:
                probe, serving_web = await serve_web(runtime, transport)
                async with serving_web:
                    assert (await probe.get("/readyz"))[0] == 200
                    await as_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                    await as_admin(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        f" WHERE datname = '{name}'"
                    )
                    status, body = await probe.get("/readyz")
                    assert (status, body["failed"]) == (503, ["database", "outbox_lag"])
                    assert body["checks"]["database"].startswith("unreachable")
                    assert body["checks"]["transport:telegram"] == "connected"
                    await as_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                    assert (await probe.get("/readyz"))[0] == 200
            finally:
                await transport.stop()
    finally:
        await as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.mark.parametrize(
    "listen", ["8080", "localhost", "127.0.0.1:99999", "::1:8080", "http://0.0.0.0:80"]
)
def test_a_bad_web_listen_is_one_clear_line(tmp_path: Path, listen: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[web]\nlisten = "{listen}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: config error in web.listen: Value error, expected host:port such as "
        '"127.0.0.1:8080", or "" to switch the server off'
    ]


async def test_a_taken_web_port_is_one_clear_line(
    runtime: Runtime, telegram: TelegramTransport
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime.settings.web.listen = f"127.0.0.1:{port}"
        app = create_app(runtime.settings.web, runtime.engine, [telegram])
        with pytest.raises(RuntimeError, match=rf"^web.listen 127.0.0.1:{port}: cannot listen"):
            async with serving(app, runtime.settings.web):
                await asyncio.sleep(0)


async def test_readyz_follows_the_matrix_sync_loop(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    bot = await launch(
        runtime,
        synapse,
        matrix_user_factory,
        matrix_client_factory,
        tmp_path / "store",
        coordinator_room=False,
    )
    port = free_port()
    runtime.settings.web.listen = f"127.0.0.1:{port}"
    app = create_app(runtime.settings.web, runtime.engine, [bot.transport])
    try:
        async with serving(app, runtime.settings.web):
            status, body = await Probe(port).get("/readyz")
            assert (status, body["checks"]["transport:matrix"]) == (200, "connected")
            await bot.stop()  # the sync loop ends
            status, body = await Probe(port).get("/readyz")
            assert (status, body["failed"]) == (503, ["transport:matrix"])
    finally:
        await bot.stop()
