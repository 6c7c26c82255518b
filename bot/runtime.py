"""Assembles a running bot from settings: database, content and the dialogue core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.core.app import Core
from bot.core.i18n import Content
from bot.storage import db


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
    from bot.transports.registry import doors
    from handlers import routers

    if migrate:
        await db.upgrade(settings.database_url)
    content = Content(settings.bot.content_dir, settings.bot.default_language)
    engine = db.create_engine(settings.database_url, settings.database.echo)
    sessions = db.session_factory(engine)
    core = Core(settings, content, sessions, routers(), doors)
    try:
        yield Runtime(settings, engine, sessions, content, core)
    finally:
        await engine.dispose()
