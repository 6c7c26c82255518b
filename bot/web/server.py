"""Assembles the HTTP server of `sicherheitsbot run` and serves it on `web.listen`:
/healthz, /readyz and /metrics always, the coordinator console when `web.enabled`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import WebSettings
from bot.web import auth
from bot.web.health import READINESS, Connection, Readiness
from bot.web.metrics import ENGINE
from bot.web.routes import setup_console_routes, setup_routes
from bot.web.views import CONSOLE, Console

if TYPE_CHECKING:
    from bot.runtime import Runtime


def create_app(
    settings: WebSettings,
    engine: AsyncEngine,
    transports: Sequence[Connection],
    runtime: Runtime | None = None,
) -> web.Application:
    """The application: what the views need, stored on it, and the routes. The console
    needs the running bot (`runtime`) and `settings.enabled`."""
    app = web.Application(middlewares=[auth.security_headers(settings.tile_url)])
    lag = settings.max_outbox_lag_seconds
    app[READINESS] = Readiness(engine, transports, timedelta(seconds=lag) if lag else None)
    app[ENGINE] = engine
    setup_routes(app)
    if settings.enabled and runtime is not None:
        app[CONSOLE] = Console(runtime)
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.PackageLoader("bot.web", "templates"),
            autoescape=jinja2.select_autoescape(default=True),
            undefined=jinja2.StrictUndefined,
        )
        setup_console_routes(app)
    return app


@asynccontextmanager
async def serving(app: web.Application, settings: WebSettings) -> AsyncIterator[None]:
    """Listen on `settings.listen` until the block ends; RuntimeError if that fails.
    No access log: paths carry login tokens and report references."""
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
