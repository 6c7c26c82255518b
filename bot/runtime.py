"""Assembles a running bot from settings: database, content and the dialogue core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.core.app import Core
from bot.core.i18n import Content
from bot.core.router import Router
from bot.storage import db

# Packages name their feature routers under this entry-point group (pyproject.toml:
# `handlers = "handlers:routers"`): the runtime composes them without importing them.
FEATURES = "sicherheitsbot.features"


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    content: Content
    core: Core


@asynccontextmanager
async def open_runtime(settings: Settings, migrate: bool = True) -> AsyncIterator[Runtime]:
    """Upgrade the database, load content and compose the handlers; dispose on exit."""
    from bot import routine
    from bot.transports.registry import doors

    if migrate:
        await db.upgrade(settings.database_url)
    content = Content(settings.bot.content_dir, settings.bot.default_language)
    engine = db.create_engine(settings.database_url, settings.database.echo)
    sessions = db.session_factory(engine)
    core = Core(settings, content, sessions, [*feature_routers(), routine.router], doors)
    try:
        yield Runtime(settings, engine, sessions, content, core)
    finally:
        await engine.dispose()


def feature_routers() -> list[Router]:
    """The routers of every installed feature package, in the order each lists them."""
    found: list[Router] = []
    for entry in sorted(entry_points(group=FEATURES), key=lambda item: item.name):
        found.extend(entry.load()())
    if not found:
        raise RuntimeError(
            f"no feature routers installed (entry points {FEATURES!r}): "
            "install the package (pip install -e .)"
        )
    return found
