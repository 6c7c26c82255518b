"""The console's alert templates: saved alert texts per topic in German, English and
Polish. Saving and deleting are the chat's `/alert_template [ID]` (its form, sent whole)
and its delete button (`atpx:<id>`), through the web door: audited like the chat."""

from __future__ import annotations

from aiohttp import web

from bot.core.events import row_id
from bot.storage import alert_board
from bot.web import door
from bot.web.auth import Visit, remember_flash
from bot.web.views import _console, coordinators_only, page, path_id

LANGUAGES = ("de", "en", "pl")


async def _page(request: web.Request, visit: Visit, editing: int | None) -> web.Response:
    runtime = _console(request).runtime
    content, lang = runtime.content, visit.language
    async with runtime.sessions() as session:
        found = await alert_board.templates(session)
        chosen = await alert_board.template(session, editing) if editing else None
    if editing and chosen is None:
        raise web.HTTPNotFound(text=content.text(lang, "templates.not_found"))
    return page(request, "alert_templates.html", lang, visit=visit, items=found, chosen=chosen,
                topics=content.options(lang, "alert_topics"), text_languages=LANGUAGES,
                language_names=dict(content.options(lang, "languages")),
                limit=runtime.settings.limits.max_text_length, nonce=door.nonce())  # fmt: skip


@coordinators_only
async def templates_page(request: web.Request, visit: Visit) -> web.Response:
    return await _page(request, visit, None)


@coordinators_only
async def edit_page(request: web.Request, visit: Visit) -> web.Response:
    return await _page(request, visit, path_id(request))


@coordinators_only
async def save(request: web.Request, visit: Visit) -> web.StreamResponse:
    """A new template, or one edited: the chat's /alert_template form, sent whole."""
    runtime = _console(request).runtime
    form = await request.post()
    editing = row_id(str(form.get("id", ""))[:20])
    fields = {key: str(form.get(key, "")) for key in ("name", "topic")}
    fields |= {f"text_{lang}": str(form.get(f"text_{lang}", "")) for lang in LANGUAGES}
    texts = await door.act(runtime.core, visit.user, str(form.get("nonce", "")),
                           command="alert_template", args=str(editing or ""),
                           fields=fields)  # fmt: skip
    await remember_flash(runtime.core, visit, texts)
    raise web.HTTPSeeOther("/console/templates")


@coordinators_only
async def delete(request: web.Request, visit: Visit) -> web.StreamResponse:
    runtime = _console(request).runtime
    form = await request.post()
    texts = await door.act(runtime.core, visit.user, str(form.get("nonce", "")),
                           choice=f"atpx:{path_id(request)}")  # fmt: skip
    await remember_flash(runtime.core, visit, texts)
    raise web.HTTPSeeOther("/console/templates")
