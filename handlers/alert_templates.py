"""Alert templates: saved alert texts per topic, in German and optionally English and
Polish, that coordinators start an alert from.

`/alert_template` asks for a new one (name, topic, texts); `/alert_template ID` asks again
for an existing one and replaces it; `/alert_templates` lists them, each with a delete
button (`atpx:<id>`). The console sends the same form whole. Every change is audited.
Neither is in Telegram's command menu (the console is where templates are kept; its
descriptions would be needed in every language).
"""

from __future__ import annotations

from sqlalchemy import select

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice, row_id
from bot.core.forms import Answers, Form, Input, Step
from bot.core.router import Router
from bot.storage.models import AlertTemplate

router = Router("alert_templates")
LANGUAGES = ("de", "en", "pl")


def _text_step(lang: str) -> Step:
    return Step(f"text_{lang}", Input.TEXT, f"templates.q.text_{lang}", optional=lang != "de")


FORM_STEPS = (
    Step("name", Input.TEXT, "templates.q.name"),
    Step("topic", Input.CHOICE, "templates.q.topic", options="alert_topics"),
    *(_text_step(lang) for lang in LANGUAGES),
)


async def _save(context: Context, answers: Answers) -> None:
    """Store the template (a new one, or the one being edited) and say so."""
    template_id = int(answers.get("_id") or 0)
    item = await context.session.get(AlertTemplate, template_id) if template_id else None
    if template_id and item is None:
        context.say(context.t("templates.not_found"))
        return
    if item is None:
        item = AlertTemplate()
        context.session.add(item)
    item.name = str(answers["name"])[:120]
    item.topic = str(answers["topic"])
    item.texts = {lang: str(answers[f"text_{lang}"]) for lang in LANGUAGES
                  if answers.get(f"text_{lang}")}  # fmt: skip
    item.updated_by = context.user.id
    await context.session.flush()
    await context.audit("alert_template_saved", f"#{item.id}", topic=item.topic)
    context.say(context.t("templates.saved", name=item.name))


FORM = Form(name="atp", texts="templates", review=False, steps=FORM_STEPS, on_submit=_save)
forms.register(router, FORM)


@router.command("alert_template", listed=False)
async def alert_template(context: Context) -> None:
    """A new template, or (with its number) the texts of an existing one anew."""
    raw = context.event.args.strip().lstrip("#")
    template_id = row_id(raw) if raw else None
    if raw and (template_id is None or await context.session.get(AlertTemplate, template_id)
                is None):  # fmt: skip
        context.say(context.t("templates.not_found"))
        return
    await forms.start(context, FORM, {"_id": template_id} if template_id else {})


@router.command("alert_templates", listed=False)
async def alert_templates(context: Context) -> None:
    """The saved templates, each with a delete button."""
    query = select(AlertTemplate).order_by(AlertTemplate.name)
    found = (await context.session.scalars(query)).all()
    new = Choice("/alert_template", context.t("templates.new"))
    if not found:
        context.say(context.t("templates.none"), choices=[new])
        return
    lines = []
    for item in found:
        topic = context.content.label(context.lang, "alert_topics", item.topic)
        lines.append(f"#{item.id} · {item.name} ({topic})")
    choices = [
        Choice(f"atpx:{item.id}", context.t("templates.delete_one", id=item.id)) for item in found
    ]
    context.say("\n".join(lines), title=context.t("templates.list_title"), choices=[*choices, new])


@router.choice("atpx")
async def delete(context: Context) -> None:
    """Delete a template (coordinators only: see the access table)."""
    template_id = row_id(context.event.choice.removeprefix("atpx:"))
    item = await context.session.get(AlertTemplate, template_id) if template_id else None
    if item is None:
        context.say(context.t("templates.not_found"))
        return
    await context.session.delete(item)
    await context.audit("alert_template_deleted", f"#{item.id}")
    context.say(context.t("templates.deleted", name=item.name))
