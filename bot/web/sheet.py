"""A report laid out like a police wanted-sheet — what, place, time, person, vehicle — with
its files, the reporter's contact (only when allowed) and its history: for the report's
page, its print view and its PDF alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.core.forms import FORMS, Form, Input, Step
from bot.core.forms import render as render_answer
from bot.core.i18n import Content
from bot.storage.console import HistoryEntry
from bot.storage.models import Media, Report

REPORT_FORM = "rep"
SECTIONS = ("what", "place", "time", "person", "vehicle")
TIME_KEYS = ("when", "when_time", "when_at")
# Actions whose actor is a coordinator; a reporter's own (the report, its details) never
# show who they are.
BY_COORDINATOR = ("report_status", "report_reply")


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    title: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class File:
    sha256: str
    kind: str
    mime_type: str
    name: str


@dataclass(frozen=True, slots=True)
class Step_:
    at: str
    text: str
    by: str


@dataclass(frozen=True, slots=True)
class Sheet:
    id: int
    reference: str
    category: str
    status: str
    status_label: str
    received: str
    note: str
    sections: tuple[Section, ...]
    latitude: float | None
    longitude: float | None
    files: tuple[File, ...]
    contact_allowed: bool
    contact: str
    history: tuple[Step_, ...]


def _section_of(step: Step) -> str:
    if step.group in ("person", "vehicle"):
        return step.group
    if step.group == "road" or step.key in ("place", "motorway"):
        return "place"
    if step.key in TIME_KEYS:
        return "time"
    return "what"


def sheet(
    content: Content,
    lang: str,
    tz: ZoneInfo,
    report: Report,
    media: list[Media],
    history: list[HistoryEntry],
) -> Sheet:
    """The report as the console shows it, in `lang`."""
    form: Form | None = FORMS.get(REPORT_FORM)
    answers = report.answers
    grouped: dict[str, list[Line]] = {key: [] for key in SECTIONS}
    for step in form.steps if form is not None else ():
        if not step.summary or step.key == "phone" or answers.get(step.key) is None:
            continue
        if not step.applies(answers) or step.kind is Input.MEDIA:
            continue
        label = content.text(lang, f"{form.texts}.labels.{step.key}") if form else step.key
        value = render_answer(content, lang, tz, step, answers)
        grouped[_section_of(step)].append(Line(label, value))
    sections = tuple(
        Section(key, content.text(lang, f"console.section_{key}"), tuple(lines))
        for key, lines in grouped.items()
        if lines
    )
    place = answers.get("place")
    latitude = longitude = None
    if isinstance(place, dict) and "lat" in place and "lon" in place:
        latitude, longitude = float(place["lat"]), float(place["lon"])
    return Sheet(
        id=report.id,
        reference=report.reference,
        category=content.label(lang, "categories", report.category),
        status=report.status,
        status_label=content.label(lang, "status", report.status),
        received=when(content, lang, tz, report.created_at),
        note=report.status_note,
        sections=sections,
        latitude=latitude,
        longitude=longitude,
        files=tuple(File(m.sha256, m.kind, m.mime_type, m.file_name) for m in media),
        contact_allowed=report.contact_allowed,
        contact=contact(content, lang, report),
        history=tuple(_step(content, lang, tz, entry) for entry in history),
    )


def when(content: Content, lang: str, tz: ZoneInfo, moment: datetime) -> str:
    return content.format_when(lang, moment, tz)


def contact(content: Content, lang: str, report: Report) -> str:
    """How to reach the reporter — only when they allowed it."""
    if not report.contact_allowed:
        return content.text(lang, "console.contact_anonymous")
    handle = str((report.answers.get("_contact") or {}).get("handle") or "")
    parts = [part for part in (handle, str(report.answers.get("phone") or "")) if part]
    how = " · ".join(parts) or content.text(lang, "console.contact_reply_only")
    return content.text(lang, "console.contact_allowed", how=how)


def _step(content: Content, lang: str, tz: ZoneInfo, entry: HistoryEntry) -> Step_:
    status = content.label(lang, "status", str(entry.details.get("status", "")))
    text = content.text(lang, f"console.history_{entry.action}", status=status)
    by = entry.actor if entry.action in BY_COORDINATOR and entry.actor else ""
    return Step_(when(content, lang, tz, entry.at), text, by)
