"""Who is at the console: one-time login links, sessions, CSRF, and the response headers.

- A login link (`/console/login/<token>`, from `/console` in the chat or `sicherheitsbot
  console-link`) shows a page with a button; only its POST uses the token up (a link
  preview that fetches the URL uses nothing). Tokens are single use and valid for minutes;
  refused attempts are counted per client address and answered 429 past `FAILURES`.
- The session lives in the database (several instances share it); the cookie holds its
  secret: HttpOnly, SameSite=Strict, Secure when `web.public_url` is https, for
  `web.session_hours`. Every request reads the person from `users` again: someone who
  stopped being a coordinator is let out at the next request.
- Every POST carries the session's CSRF token (a hidden field); without it nothing happens.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from bot.config import WebSettings
from bot.core.app import Core
from bot.storage import console
from bot.storage.db import transaction
from bot.storage.models import User, utcnow

COOKIE = "sb_console"
# Refused login attempts per client address within WINDOW seconds before all are refused.
FAILURES = 10
WINDOW = 600.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Visit:
    """The coordinator behind a request: their user row as the bot knows it, the
    session's CSRF token and secret, the console's language and what to show once."""

    user: User
    secret: str
    csrf: str
    language: str
    flash: tuple[str, ...]
    # An admin of the deployment (named in the config): the admin pages are theirs.
    admin: bool = False

    @property
    def identity(self) -> str:
        return f"{self.user.transport}:{self.user.platform_id}"


VISIT = "sicherheitsbot.visit"


class LoginGuard:
    """Counts refused login attempts per client address (in memory: a restart forgets)."""

    def __init__(self, failures: int = FAILURES, window: float = WINDOW) -> None:
        self.failures = failures
        self.window = window
        self._seen: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        recent = self._recent(address)
        return len(recent) >= self.failures

    def refused(self, address: str) -> None:
        self._recent(address).append(time.monotonic())

    def _recent(self, address: str) -> deque[float]:
        found = self._seen.setdefault(address, deque())
        while found and found[0] < time.monotonic() - self.window:
            found.popleft()
        if len(self._seen) > 10_000:  # a flood of addresses: forget the quiet ones
            self._seen = {key: value for key, value in self._seen.items() if value}
        return found


def client_address(request: web.Request, proxies: Sequence[IPv4Network | IPv6Network]) -> str:
    """Who sent the request: its peer, or behind one of `proxies` (`web.trusted_proxies`)
    the last address of X-Forwarded-For that is not a proxy's (each proxy appends the
    address it was reached from; what comes before may be forged)."""
    remote = request.remote or "unknown"
    if not _proxy(remote, proxies):
        return remote
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _proxy(hop, proxies):
            return hop
    return hops[0] if hops else remote


def _proxy(address: str, proxies: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def set_session_cookie(response: web.StreamResponse, settings: WebSettings, secret: str) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(settings.session_hours * 3600),
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=settings.base_url.startswith("https://"),
    )


def csrf_ok(visit: Visit, given: str) -> bool:
    return bool(given) and hmac.compare_digest(visit.csrf.encode(), given.encode())


async def visit_for(core: Core, request: web.Request, take_flash: bool) -> Visit | None:
    """The coordinator whose live session the request's cookie names, or None: no cookie,
    an ended or expired session, or someone who no longer coordinates. `take_flash`: the
    page shows what the last actions answered (only then are they taken)."""
    secret = request.cookies.get(COOKIE, "")
    if not secret:
        return None
    async with transaction(core.sessions) as session:
        found = await console.session_for(session, secret, utcnow())
        if found is None:
            return None
        row, user = found
        if not core.is_coordinator(user):
            await console.end_session(session, secret)
            return None
        flash = tuple(str(text) for text in row.flash) if take_flash else ()
        if flash:
            row.flash = []
        # The console is a coordinator's desk: in their language when it has the
        # coordinators' texts, else in the deployment's default.
        language = core.content.coordinator_language(row.language or user.language)
    admin = core.is_admin(user.transport, user.platform_id)
    return Visit(user, secret, row.csrf, language, flash, admin)


async def remember_flash(core: Core, visit: Visit, texts: list[str]) -> None:
    """What an action answered, for the next page."""
    async with transaction(core.sessions) as session:
        found = await console.session_for(session, visit.secret, utcnow())
        if found is not None:
            found[0].flash = [*found[0].flash, *texts][-10:]


async def choose_language(core: Core, visit: Visit, language: str) -> None:
    async with transaction(core.sessions) as session:
        found = await console.session_for(session, visit.secret, utcnow())
        if found is not None:
            found[0].language = language


def security_headers(tile_url: str) -> Middleware:
    """Headers on every answer: a CSP without inline scripts, no framing, no referrer."""
    tiles = ""
    if tile_url:
        parts = urlsplit(tile_url)
        tiles = f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data:{tiles}; media-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )

    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            _headers(response, policy)
            raise
        _headers(response, policy)
        if request.path.startswith("/console/static/"):
            response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    return add_headers


def _headers(response: web.StreamResponse, policy: str) -> None:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
