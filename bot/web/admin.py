"""The admin pages (the deployment's admins only): the coordinators — added and removed
through the chat's `/coordinators add|remove`, sent through the web door, so the rules and
the audit are the chat's — and the audit log, filtered and exported as CSV."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta

from aiohttp import web

from bot.storage import audit_log, repos
from bot.storage.audit_log import AuditFilters
from bot.storage.db import transaction
from bot.web import door
from bot.web.auth import Visit, remember_flash
from bot.web.statistics import csv_response
from bot.web.views import _console, coordinators_only, page

AdminView = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def admins_only(view: AdminView) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A coordinator's visit (see `coordinators_only`) that only an admin gets past; the
    others get a plain refusal (403), and the attempt is audited."""

    async def guarded(request: web.Request, visit: Visit) -> web.StreamResponse:
        if not visit.admin:
            runtime = _console(request).runtime
            async with transaction(runtime.sessions) as session:
                await repos.audit(session, visit.user.id, "refused", "console_admin", {})
            return page(request, "message.html", visit.language, 403,
                        message_key="console.admins_only", visit=visit)  # fmt: skip
        return await view(request, visit)

    return coordinators_only(guarded)


@admins_only
async def coordinators_page(request: web.Request, visit: Visit) -> web.Response:
    runtime = _console(request).runtime
    async with runtime.sessions() as session:
        granted = await repos.granted_coordinators(session)
    doors = runtime.core.doors()
    configured = sorted(f"{d.name}:{who}" for d in doors for who in d.coordinators)
    admins = {f"{d.name}:{who}" for d in doors for who in d.admins}
    added = sorted({f"{t}:{p}" for t, p, _chat in granted} - set(configured))
    return page(request, "admin.html", visit.language, visit=visit, configured=configured,
                added=added, admins=admins, doors=[d.name for d in doors if d.active],
                nonce=door.nonce())  # fmt: skip


@admins_only
async def change_coordinator(request: web.Request, visit: Visit) -> web.StreamResponse:
    """Add or remove one: the chat's `/coordinators add|remove TRANSPORT ID`."""
    runtime = _console(request).runtime
    form = await request.post()
    action = str(form.get("action", ""))
    transport = str(form.get("transport", "")).strip()[:16]
    platform_id = str(form.get("platform_id", "")).strip()[:255]
    if action not in ("add", "remove") or not platform_id or len(platform_id.split()) != 1:
        texts = [runtime.content.text(visit.language, "console.admin_bad_id")]
    else:
        texts = await door.act(runtime.core, visit.user, str(form.get("nonce", "")),
                               command="coordinators",
                               args=f"{action} {transport} {platform_id}")  # fmt: skip
    await remember_flash(runtime.core, visit, texts)
    raise web.HTTPSeeOther("/console/admin")


def _filters(request: web.Request) -> tuple[AuditFilters, bool]:
    """The audit log's filters from the query, and whether a date could not be read."""
    query, tz, bad = request.query, _console(request).tz, False

    def day(name: str, shift: int = 0) -> datetime | None:
        nonlocal bad
        raw = query.get(name, "").strip()[:32]
        if not raw:
            return None
        try:
            return datetime.combine(date.fromisoformat(raw) + timedelta(days=shift), time(), tz)
        except ValueError:
            bad = True
            return None

    return AuditFilters(
        action=query.get("action", "").strip()[:64],
        actor=query.get("actor", "").strip()[:300],
        subject=query.get("subject", "").strip()[:128],
        since=day("since"),
        until=day("until", 1),
    ), bad


@admins_only
async def audit_page(request: web.Request, visit: Visit) -> web.Response:
    console_ = _console(request)
    filters, bad = _filters(request)
    async with console_.runtime.sessions() as session:
        rows = await audit_log.entries(session, filters)
        actions = await audit_log.actions(session)
    content = console_.runtime.content

    def when(moment: datetime) -> str:
        return content.format_when(visit.language, moment, console_.tz)

    return page(request, "audit.html", visit.language, visit=visit, rows=rows, actions=actions,
                when=when, query=request.query, query_string=request.query_string,
                bad_date=bad, limit=audit_log.LIMIT)  # fmt: skip


@admins_only
async def audit_csv(request: web.Request, visit: Visit) -> web.Response:
    filters, _bad = _filters(request)
    async with _console(request).runtime.sessions() as session:
        rows = await audit_log.entries(session, filters, limit=100_000)
    return csv_response(
        "audit.csv",
        ["id", "at", "actor", "action", "subject", "details"],
        [[r.id, r.at.isoformat(), r.actor, r.action, r.subject, repr_details(r.details)]
         for r in rows],
    )  # fmt: skip


def repr_details(details: dict[str, object]) -> str:
    return "; ".join(f"{key}={value}" for key, value in sorted(details.items()))
