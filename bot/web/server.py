"""Assembles the HTTP server of `sicherheitsbot run` and serves it on `web.listen`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import WebSettings
from bot.web.health import READINESS, Connection, Readiness
from bot.web.routes import setup_routes


def create_app(
    settings: WebSettings, engine: AsyncEngine, transports: Sequence[Connection]
) -> web.Application:
    """The application: what the views need, stored on it, and the routes."""
    app = web.Application()
    lag = settings.max_outbox_lag_seconds
    app[READINESS] = Readiness(engine, transports, timedelta(seconds=lag) if lag else None)
    setup_routes(app)
    return app


@asynccontextmanager
async def serving(app: web.Application, settings: WebSettings) -> AsyncIterator[None]:
    """Listen on `settings.listen` until the block ends; RuntimeError if that fails."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise RuntimeError(
                f"web.listen {settings.listen}: cannot listen there: {exc.strerror or exc}"
            ) from exc
        yield
    finally:
        await runner.cleanup()
