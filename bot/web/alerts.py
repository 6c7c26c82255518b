"""The console's alert pages: compose (preview, send, urgent ones confirmed twice), the list
with live receipts per transport, cancel a scheduled one, the CAP 1.2 download.

Composing is the chat's `/broadcast`, sent whole through the web door: its form, its
preview (which the page shows), its "Send" (`bcp:send`), so an alert from the console goes
the one way every alert goes — outbox, receipts, expiry, urgent re-send, CAP. Cancelling
is the chat's cancel button (`bcx:<id>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from bot.cap import cap_document
from bot.core.events import row_id
from bot.storage import alert_board, console
from bot.storage.alert_board import Audience
from bot.web import door
from bot.web.auth import Visit, remember_flash
from bot.web.views import _console, coordinators_only, page, path_id

# The texts the compose page asks for (as the chat asks: the first in the coordinator's
# language, the others optional).
LANGUAGES = ("de", "en", "pl")
# The option lists the alert list names things with.
LABELS = {
    "statuses": "alert_status",
    "topics": "alert_topics",
    "severities": "alert_severity",
    "transports": "alert_transports",
}


@dataclass
class Draft:
    """What the compose form holds, to show it again (after a preview, a refusal or the
    urgent question)."""

    texts: dict[str, str] = field(default_factory=dict)
    topic: str = "general"
    severity: str = "warning"
    roles: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    transports: list[str] = field(default_factory=list)
    hours: str = "24"
    when: str = "now"
    at: str = ""

    @classmethod
    def of(cls, form: MultiDictProxy[Any]) -> Draft:
        def many(name: str) -> list[str]:
            return [str(value)[:32] for value in form.getall(name, [])][:20]

        return cls(
            texts={lang: str(form.get(f"text_{lang}", "")).strip() for lang in LANGUAGES},
            topic=str(form.get("topic", ""))[:32],
            severity=str(form.get("severity", ""))[:16],
            roles=many("roles"),
            regions=many("regions"),
            transports=many("transports"),
            hours=str(form.get("hours", "")).strip()[:8],
            when=str(form.get("when", "now"))[:8],
            at=str(form.get("at", "")).strip()[:32],
        )

    def fields(self, first: str) -> dict[str, str]:
        """The chat form's fields: `text` in the coordinator's language, the others as
        `text_<lang>`; several options comma-separated; the time as the chat reads it."""
        found = {
            "text": self.texts.get(first, ""),
            **{f"text_{lang}": text for lang, text in self.texts.items() if lang != first},
            "topic": self.topic,
            "severity": self.severity,
            "roles": ",".join(self.roles),
            "regions": ",".join(self.regions),
            "transports": ",".join(self.transports),
            "hours": self.hours,
            "when": self.when,
        }
        if self.when == "later":
            found["at"] = self.at.replace("T", " ")
        return found


def _first_language(request: web.Request, visit: Visit) -> str:
    """The language the chat asks an alert's first text in: the coordinator's own."""
    return _console(request).runtime.content.coordinator_language(visit.user.language)


def _options(request: web.Request, visit: Visit) -> dict[str, Any]:
    runtime = _console(request).runtime
    content, lang = runtime.content, visit.language
    running = {d.name for d in runtime.core.doors() if d.active}
    return {
        "topics": content.options(lang, "alert_topics"),
        "severities": content.options(lang, "alert_severity"),
        "roles": content.options(lang, "roles"),
        "regions": content.options(lang, "regions"),
        "transports": [o for o in content.options(lang, "alert_transports") if o[0] in running],
        "text_languages": LANGUAGES,
        "language_names": dict(content.options(lang, "languages")),
        "first_language": _first_language(request, visit),
        "limit": runtime.settings.limits.max_text_length,
    }


async def _compose(
    request: web.Request,
    visit: Visit,
    draft: Draft,
    *,
    status: int = 200,
    problems: tuple[str, ...] = (),
    preview: tuple[str, ...] = (),
    urgent: bool = False,
    count: int = 0,
) -> web.Response:
    async with _console(request).runtime.sessions() as session:
        saved = await alert_board.templates(session)
    return page(request, "alert_compose.html", visit.language, status, visit=visit,
                draft=draft, problems=problems, preview=preview, urgent=urgent,
                count=count, nonce=door.nonce(), templates=saved,
                **_options(request, visit))  # fmt: skip


@coordinators_only
async def compose_page(request: web.Request, visit: Visit) -> web.Response:
    """An empty alert, or one started from a template (`?template=ID`)."""
    draft = Draft()
    chosen = row_id(request.query.get("template", "")[:20])
    async with _console(request).runtime.sessions() as session:
        found = await alert_board.template(session, chosen) if chosen else None
        if found is not None:
            draft.topic = found.topic
            draft.texts = {str(lang): str(text) for lang, text in found.texts.items()}
        count = await alert_board.reach(session, Audience(draft.topic))
    return await _compose(request, visit, draft, count=count)


def _audience(values: Any) -> Audience:
    def many(name: str) -> tuple[str, ...]:
        return tuple(str(v)[:32] for v in values.getall(name, []))[:20]

    return Audience(str(values.get("topic", ""))[:32], many("roles"), many("regions"),
                    many("transports"))  # fmt: skip


@coordinators_only
async def reach(request: web.Request, visit: Visit) -> web.Response:
    """How many people the audience chosen so far reaches (the page asks as it changes)."""
    async with _console(request).runtime.sessions() as session:
        count = await alert_board.reach(session, _audience(request.query))
    text = _console(request).runtime.content.text(visit.language, "console.alert_reach",
                                                  count=count)  # fmt: skip
    return web.json_response({"count": count, "text": text})


def _problems(request: web.Request, visit: Visit, draft: Draft) -> tuple[str, ...]:
    """What is wrong with the form before the bot sees it: short, plain sentences."""
    runtime = _console(request).runtime
    content, lang = runtime.content, visit.language
    limit = runtime.settings.limits.max_text_length
    found = []
    if not draft.texts.get(_first_language(request, visit)):
        language = content.label(lang, "languages", _first_language(request, visit))
        found.append(content.text(lang, "console.alert_text_required", language=language))
    for code, text in draft.texts.items():
        if len(text) > limit:
            language = content.label(lang, "languages", code)
            found.append(content.text(lang, "console.alert_too_long", language=language,
                                      length=len(text), limit=limit))  # fmt: skip
    if draft.when == "later" and not draft.at:
        found.append(content.text(lang, "console.alert_at_required"))
    return tuple(found)


async def _preview(request: web.Request, visit: Visit, draft: Draft, nonce: str) -> list[str]:
    """The chat's /broadcast with the whole form: its preview's texts (the alert as the
    recipients read it, and how many get it)."""
    core = _console(request).runtime.core
    return await door.act(core, visit.user, nonce, command="broadcast",
                          fields=draft.fields(_first_language(request, visit)))  # fmt: skip


async def _at_preview(request: web.Request, visit: Visit) -> bool:
    async with _console(request).runtime.sessions() as session:
        return await console.open_flow(session, visit.user.id, door.CHAT) == "bcp"


@coordinators_only
async def send(request: web.Request, visit: Visit) -> web.StreamResponse:
    """Preview or send. Nothing goes out before "Send"; an urgent alert asks once more."""
    form = await request.post()
    draft, action = Draft.of(form), str(form.get("action", "preview"))
    nonce = str(form.get("nonce", ""))
    problems = _problems(request, visit, draft)
    if problems:
        return await _compose(request, visit, draft, status=400, problems=problems)
    texts = await _preview(request, visit, draft, nonce)
    if not await _at_preview(request, visit):  # the bot refused an answer: say which
        return await _compose(request, visit, draft, status=400, problems=tuple(texts))
    async with _console(request).runtime.sessions() as session:
        count = await alert_board.reach(session, _audience(form))
    urgent = draft.severity == "urgent" and action == "send"
    if action not in ("send", "send_urgent") or urgent:
        # Sending runs the form again from the page: the chat's preview is not left open
        # (it would be shown again after the coordinator's next action).
        await door.act(_console(request).runtime.core, visit.user, f"{nonce}-end",
                       choice="bcp:cancel")  # fmt: skip
        return await _compose(
            request, visit, draft, preview=tuple(texts), urgent=urgent, count=count
        )
    done = await door.act(_console(request).runtime.core, visit.user, f"{nonce}-send",
                          choice="bcp:send")  # fmt: skip
    return await _acted(request, visit, done)


async def _acted(request: web.Request, visit: Visit, texts: list[str]) -> web.StreamResponse:
    await remember_flash(_console(request).runtime.core, visit, texts)
    raise web.HTTPSeeOther("/console/alerts")


@coordinators_only
async def alerts_page(request: web.Request, visit: Visit) -> web.Response:
    """The latest alerts with their receipts; the live part alone when the page polls it."""
    console_ = _console(request)
    content, lang = console_.runtime.content, visit.language
    state = request.query.get("status", "")[:16]
    async with console_.runtime.sessions() as session:
        rows = await alert_board.latest_alerts(session, state)
        counts = await alert_board.alerts_by_status(session)

    def when(moment: Any) -> str:
        return content.format_when(lang, moment, console_.tz)

    values: dict[str, Any] = {
        "visit": visit,
        "rows": rows,
        "when": when,
        "nonce": door.nonce(),
        "receipts": alert_board.RECEIPTS,
        "receipt_key": "console.receipt_",
        "counts": counts,
        "state": state,
        "query_string": request.query_string,
        **{name: dict(content.options(lang, key)) for name, key in LABELS.items()},
    }
    if request.query.get("part") == "live":
        return page(request, "alerts_live.html", lang, **values)
    return page(request, "alerts.html", lang, **values)


@coordinators_only
async def cancel(request: web.Request, visit: Visit) -> web.StreamResponse:
    """The chat's cancel button of a scheduled alert."""
    form = await request.post()
    texts = await door.act(_console(request).runtime.core, visit.user, str(form.get("nonce", "")),
                           choice=f"bcx:{path_id(request)}")  # fmt: skip
    return await _acted(request, visit, texts)


@coordinators_only
async def cap(request: web.Request, visit: Visit) -> web.Response:
    """The alert as an OASIS CAP 1.2 document (what `broadcast export --cap` writes)."""
    runtime = _console(request).runtime
    broadcast_id = path_id(request)
    async with runtime.sessions() as session:
        item = await alert_board.alert(session, broadcast_id)
        if item is None:
            raise web.HTTPNotFound(text=runtime.content.text(visit.language, "console.not_found"))
        body = cap_document(item, runtime.settings, runtime.content)
    return web.Response(
        body=body,
        content_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="alert-{broadcast_id}-cap.xml"'},
    )
