"""Shared fixtures: settings on a fresh database (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings, load_settings
from bot.runtime import Runtime, open_runtime
from tests.chat import Chat

pytest_plugins = [
    "tests.peers.synapse_fixtures",
    "tests.telegram_fixtures",
    "tests.console_fixtures",
    "tests.browser_fixtures",
]

POSTGRES_URL = os.environ.get("SICHERHEITSBOT_TEST_DATABASE_URL", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On SQLite, leave out the tests of several instances on one PostgreSQL database; on
    PostgreSQL, the tests of SQLite's own file lock. tests/run.sh runs both passes (and CI
    always does), so every test runs."""
    other = "sqlite_only" if POSTGRES_URL else "postgres_only"
    kept = [item for item in items if item.get_closest_marker(other) is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


async def reset_postgres(url: str) -> None:
    """Give each test an empty public schema on the shared PostgreSQL test database."""
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    if POSTGRES_URL:
        await reset_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    settings = load_settings()
    settings.bot.data_dir = tmp_path / "data"
    settings.database.url = database_url
    settings.console.coordinators = ["leitstelle"]
    # Test people type faster than anyone: the flood limit is tested on its own
    # (tests/test_limits.py), everywhere else it stays out of the way.
    settings.limits.messages_per_minute = 100_000
    # No HTTP server on the default port 8080: tests that want one pick a free port.
    settings.web.listen = ""
    return settings


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as runtime:
        yield runtime


@pytest.fixture
def chat(runtime: Runtime) -> Chat:
    """A terminal user called 'driver'."""
    return Chat(runtime.core, "driver")
