"""The console's views: each turns a request into a query (what a page shows) or into a
Core event through the web door (what a coordinator does), and lays the result out with a
template. No view writes shared state itself.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from bot.core.events import row_id
from bot.storage import console, repos
from bot.storage.db import transaction
from bot.storage.models import utcnow
from bot.web import auth, door
from bot.web.auth import Visit
from bot.web.pdf import report_pdf
from bot.web.sheet import Sheet, sheet

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
STATUSES = ("ack", "police", "closed")
# Shown or played in the page, when their type says they are what their kind says.
INLINE_KINDS = {"photo": "image/", "video": "video/", "voice": "audio/"}
NOT_PAGES = ("/console/media/", "/console/map.json")
# Downloads and what a page fetches: they show no page, so they take no flash.
NOT_PAGE_ENDINGS = (".json", ".xml", ".csv", ".pdf", ".svg")


@dataclass
class Console:
    """What the views need: the running bot and the refused-login counter."""

    runtime: Runtime
    guard: auth.LoginGuard = field(default_factory=auth.LoginGuard)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.runtime.settings.bot.timezone)


CONSOLE = web.AppKey("console", Console)
View = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def path_id(request: web.Request) -> int:
    """The row id in the path (`{id}`); an id that is none: 404."""
    found = row_id(request.match_info["id"][:20])
    if not found:
        raise web.HTTPNotFound()
    return found


def page(
    request: web.Request, name: str, lang: str, status: int = 200, **values: Any
) -> web.Response:
    """A template in `lang`: `t(key, ...)` gives its words from content."""
    content = _console(request).runtime.content

    def t(key: str, **more: Any) -> str:
        return content.text(lang, key, **more)

    languages = content.coordinator_languages
    context = {"t": t, "lang": lang, "languages": languages, "request": request, **values}
    return aiohttp_jinja2.render_template(name, request, context, status=status)


def _default_language(request: web.Request) -> str:
    return _console(request).runtime.settings.bot.default_language


def coordinators_only(view: View) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Let a coordinator with a live session in; a POST must carry the session's CSRF
    token. Anyone else gets the "logged out" page (403) and nothing happens."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        # A page shows what the last actions answered; a POST, a poll or a file does not.
        whole_page = request.method == "GET" and not (
            request.query.get("part")
            or request.path.startswith(NOT_PAGES)
            or request.path.endswith(NOT_PAGE_ENDINGS)
        )
        visit = await auth.visit_for(_console(request).runtime.core, request, whole_page)
        if visit is None:
            response = page(request, "message.html", _default_language(request), 403,
                            message_key="console.logged_out")  # fmt: skip
            response.del_cookie(auth.COOKIE, path="/console")
            return response
        if request.method == "POST":
            form = await request.post()
            if not auth.csrf_ok(visit, str(form.get("csrf", ""))):
                log.warning("console: a POST without a valid CSRF token refused")
                return page(request, "message.html", visit.language, 403,
                            message_key="console.form_expired", visit=visit)  # fmt: skip
        return await view(request, visit)

    return guarded


# -- logging in and out -----------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    """The link from the chat: a button that logs in (a link preview uses nothing up)."""
    lang = _default_language(request)
    console_ = _console(request)
    proxies = console_.runtime.settings.web.trusted_proxies
    if console_.guard.blocked(auth.client_address(request, proxies)):
        return page(request, "message.html", lang, 429, message_key="console.too_many")
    return page(request, "login.html", lang, token=request.match_info["token"])


async def login(request: web.Request) -> web.StreamResponse:
    """Use the one-time token up and open a session for a coordinator."""
    console_ = _console(request)
    runtime = console_.runtime
    address = auth.client_address(request, runtime.settings.web.trusted_proxies)
    lang = runtime.settings.bot.default_language
    if console_.guard.blocked(address):
        return page(request, "message.html", lang, 429, message_key="console.too_many")
    token = str((await request.post()).get("token", ""))[:128]
    now = utcnow()
    async with transaction(runtime.sessions) as session:
        user_id = await console.use_login(session, token, now) if token else None
        user = await repos.user_by_id(session, user_id) if user_id is not None else None
        allowed = user is not None and runtime.core.is_coordinator(user)
        if user is not None and allowed:
            secret, _csrf = await console.open_session(
                session, user.id, now, runtime.settings.web.session_hours
            )
            await repos.audit(session, user.id, "console_login", "", {})
        elif user is not None:
            await repos.audit(session, user.id, "refused", "console_login", {})
    if user is None or not allowed:
        console_.guard.refused(address)
        log.info("console: a login link was refused")
        return page(request, "message.html", lang, 403, message_key="console.login_refused")
    response = web.HTTPSeeOther("/console/")
    auth.set_session_cookie(response, runtime.settings.web, secret)
    return response


@coordinators_only
async def logout(request: web.Request, visit: Visit) -> web.StreamResponse:
    runtime = _console(request).runtime
    async with transaction(runtime.sessions) as session:
        await console.end_session(session, visit.secret)
        await repos.audit(session, visit.user.id, "console_logout", "", {})
    response = page(request, "message.html", visit.language, message_key="console.logged_out")
    response.del_cookie(auth.COOKIE, path="/console")
    return response


@coordinators_only
async def language(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await request.post()
    chosen = str(form.get("language", ""))
    if chosen in _console(request).runtime.content.coordinator_languages:
        await auth.choose_language(_console(request).runtime.core, visit, chosen)
    raise web.HTTPSeeOther(_back_to(str(form.get("next", ""))))


def _back_to(path: str) -> str:
    """Only a path of the console itself (never another site)."""
    return path if path.startswith("/console/") and "//" not in path else "/console/"


# -- the inbox and the map ------------------------------------------------------------------


def filters_of(request: web.Request, tz: ZoneInfo) -> console.Filters:
    query = request.query

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(query.get(name, ""))
        except ValueError:
            return None

    since, until = day("since"), day("until")
    return console.Filters(
        status=query.get("status", "")[:16],
        category=query.get("category", "")[:32],
        region=query.get("region", "")[:32],
        since=None if since is None else datetime.combine(since, time(), tz),
        until=None if until is None else datetime.combine(until + timedelta(days=1), time(), tz),
        photo=query.get("photo", "") == "1",
    )


def _filter_options(request: web.Request, lang: str) -> dict[str, Any]:
    content = _console(request).runtime.content
    return {
        "statuses": content.options(lang, "status"),
        "categories": content.options(lang, "categories"),
        "regions": content.options(lang, "regions"),
        "query": request.query,
        "query_string": request.query_string,
    }


async def _rows(request: web.Request, visit: Visit, located: bool) -> list[console.ReportRow]:
    console_ = _console(request)
    async with console_.runtime.sessions() as session:
        return await console.reports(
            session, visit.user.id, filters_of(request, console_.tz), located=located
        )


@coordinators_only
async def inbox(request: web.Request, visit: Visit) -> web.Response:
    """Reports newest first, filtered; the live part alone when the page polls it."""
    console_ = _console(request)
    rows = await _rows(request, visit, located=False)
    async with console_.runtime.sessions() as session:
        counts = await console.counts_by_status(session)
    lang = visit.language
    values = {
        "visit": visit,
        "rows": rows,
        "counts": counts,
        "total": sum(counts.values()),
        "when": lambda moment: console_.runtime.content.format_when(lang, moment, console_.tz),
        **_filter_options(request, lang),
    }
    if request.query.get("part") == "live":
        return page(request, "inbox_live.html", lang, **values)
    return page(request, "inbox.html", lang, **values)


@coordinators_only
async def map_page(request: web.Request, visit: Visit) -> web.Response:
    settings = _console(request).runtime.settings.web
    return page(request, "map.html", visit.language, visit=visit,
                tile_url=settings.tile_url, tile_attribution=settings.tile_attribution,
                **_filter_options(request, visit.language))  # fmt: skip


@coordinators_only
async def map_points(request: web.Request, visit: Visit) -> web.Response:
    """The located reports as JSON for the map's markers."""
    content = _console(request).runtime.content
    rows = await _rows(request, visit, located=True)

    def category(option: str) -> str:
        return content.label(visit.language, "categories", option)

    return web.json_response(
        [
            {
                "reference": row.reference,
                "lat": row.latitude,
                "lon": row.longitude,
                "status": row.status,
                "label": f"{row.reference} · {category(row.category)}",
                "url": f"/console/reports/{row.reference}",
            }
            for row in rows
        ]
    )


# -- one report -------------------------------------------------------------------------------


async def _sheet(request: web.Request, visit: Visit, read: bool) -> Sheet:
    console_ = _console(request)
    runtime = console_.runtime
    reference = request.match_info["reference"].upper()[:32]
    async with transaction(runtime.sessions) as session:
        found = await console.report(session, reference)
        if found is None:
            raise web.HTTPNotFound(text=runtime.content.text(visit.language, "console.not_found"))
        if read:
            await console.mark_read(session, visit.user.id, found.id)
        media = list(await console.files(session, found.id))
        history = await console.history(session, found.reference)
    return sheet(runtime.content, visit.language, console_.tz, found, media, history)


@coordinators_only
async def report_page(request: web.Request, visit: Visit) -> web.Response:
    settings = _console(request).runtime.settings.web
    found = await _sheet(request, visit, read=True)
    return page(request, "report.html", visit.language, visit=visit, sheet=found,
                statuses=_triage_options(request, visit, found), nonce=door.nonce(),
                tile_url=settings.tile_url, tile_attribution=settings.tile_attribution)  # fmt: skip


def _triage_options(request: web.Request, visit: Visit, found: Sheet) -> list[tuple[str, str]]:
    content = _console(request).runtime.content
    return [
        (s, label) for s, label in content.options(visit.language, "triage") if s != found.status
    ]


@coordinators_only
async def print_page(request: web.Request, visit: Visit) -> web.Response:
    found = await _sheet(request, visit, read=False)
    return page(request, "print.html", visit.language, visit=visit, sheet=found,
                footer=_footer(request, visit))  # fmt: skip


def _footer(request: web.Request, visit: Visit) -> str:
    console_ = _console(request)
    content, settings = console_.runtime.content, console_.runtime.settings
    printed = content.format_when(visit.language, utcnow(), console_.tz)
    return content.text(visit.language, "console.printed", operator=settings.bot.operator,
                        when=printed)  # fmt: skip


@coordinators_only
async def pdf(request: web.Request, visit: Visit) -> web.Response:
    runtime = _console(request).runtime
    found = await _sheet(request, visit, read=False)
    body = report_pdf(found, runtime.content, visit.language, runtime.core.media,
                      _footer(request, visit))  # fmt: skip
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{found.reference}.pdf"'},
    )


@coordinators_only
async def media_file(request: web.Request, visit: Visit) -> web.StreamResponse:
    """A file a report holds, to play or show in the page."""
    runtime = _console(request).runtime
    sha256 = request.match_info["sha256"].lower()
    if len(sha256) != 64 or not all(ch in "0123456789abcdef" for ch in sha256):
        raise web.HTTPNotFound()
    async with runtime.sessions() as session:
        found = await console.report_file(session, sha256)
    path = runtime.core.media.path_for(sha256)
    if found is None or not path.is_file():
        raise web.HTTPNotFound()
    mime = found.mime_type or mimetypes.guess_type(found.file_name)[0] or ""
    inline = mime.startswith(INLINE_KINDS.get(found.kind, "-"))
    response = web.FileResponse(path)
    response.content_type = mime if inline else "application/octet-stream"
    response.headers["Content-Disposition"] = "inline" if inline else "attachment"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


# -- what a coordinator does: events through the web door -------------------------------------


async def _report_id(request: web.Request) -> int:
    runtime = _console(request).runtime
    async with runtime.sessions() as session:
        found = await console.report(session, request.match_info["reference"].upper()[:32])
    if found is None:
        raise web.HTTPNotFound()
    return found.id


async def _acted(request: web.Request, visit: Visit, texts: list[str]) -> web.StreamResponse:
    await auth.remember_flash(_console(request).runtime.core, visit, texts)
    raise web.HTTPSeeOther(f"/console/reports/{request.match_info['reference'].upper()[:32]}")


@coordinators_only
async def set_status(request: web.Request, visit: Visit) -> web.StreamResponse:
    """Triage: the chat's status button; closing carries its note (the chat's note form,
    sent whole)."""
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in STATUSES:
        raise web.HTTPBadRequest()
    report_id = await _report_id(request)
    fields = {"note": str(form.get("note", ""))} if status == "closed" else None
    texts = await door.act(_console(request).runtime.core, visit.user, str(form.get("nonce", "")),
                           choice=f"tri:{report_id}:{status}", fields=fields)  # fmt: skip
    return await _acted(request, visit, texts)


@coordinators_only
async def reply(request: web.Request, visit: Visit) -> web.StreamResponse:
    """A message to the reporter through the bot: the chat's reply dialogue, sent whole."""
    form = await request.post()
    report_id = await _report_id(request)
    fields = {"text": str(form.get("text", ""))}
    texts = await door.act(_console(request).runtime.core, visit.user, str(form.get("nonce", "")),
                           choice=f"rrp:{report_id}", fields=fields)  # fmt: skip
    return await _acted(request, visit, texts)
