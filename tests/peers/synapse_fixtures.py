"""Pytest fixtures for the Synapse peer: one homeserver per session, fresh users per test.

Load with ``pytest_plugins = ["tests.peers.synapse_fixtures"]`` in the root conftest.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nio
import pytest
import pytest_asyncio

from tests.peers.synapse import MatrixAccount, SynapseServer

UserFactory = Callable[..., Awaitable[MatrixAccount]]
ClientFactory = Callable[..., Awaitable[nio.AsyncClient]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def synapse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SynapseServer]:
    """A real Synapse on 127.0.0.1, started once per test session."""
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def matrix_user_factory(synapse: SynapseServer) -> UserFactory:
    """`await matrix_user_factory("alice", admin=False)` -> a new, uniquely named account."""

    async def register(prefix: str = "user", admin: bool = False) -> MatrixAccount:
        return await synapse.register(f"{prefix}-{uuid.uuid4().hex[:12]}", admin=admin)

    return register


@pytest_asyncio.fixture(loop_scope="session")
async def matrix_client_factory(
    synapse: SynapseServer, tmp_path: Path
) -> AsyncIterator[ClientFactory]:
    """`await matrix_client_factory(account, encryption=False)` -> a logged-in nio client
    with its own store directory; every client is closed when the test ends."""
    clients: list[nio.AsyncClient] = []

    async def new_client(account: MatrixAccount, encryption: bool = False) -> nio.AsyncClient:
        store = tmp_path / "nio-stores" / account.user_id.strip("@").replace(":", "_")
        client = await synapse.new_client(account, store, encryption=encryption)
        clients.append(client)
        return client

    yield new_client
    for client in clients:
        await client.close()
