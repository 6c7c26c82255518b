"""Every URL of the bot's HTTP server, in one place."""

from __future__ import annotations

from aiohttp import web

from bot.web import health


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
