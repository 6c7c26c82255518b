"""The annual summary: the figures a partnership reports once a year — reports received,
passed to the police, people signed up, people reached by alerts and their "understood",
by group (the people's roles) and in total, and the alerts sent by topic — as a page and
as a one-page PDF (`bot/storage/statistics.py` counts)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.storage import statistics
from bot.storage.models import utcnow
from bot.storage.statistics import GroupYear, Year
from bot.web.auth import Visit
from bot.web.pdf import annual_pdf
from bot.web.views import _console, coordinators_only, page

COLUMNS = ("reports", "passed_to_police", "people", "reached", "understood")
FIRST_YEAR = 2000


@dataclass(frozen=True, slots=True)
class Summary:
    """The year as the page and the PDF lay it out: named rows, the total last."""

    year: int
    title: str
    columns: list[str]
    rows: list[list[str]]
    alerts_sent: int
    topics: list[tuple[str, str]]


def _year(request: web.Request, visit: Visit) -> tuple[int, str]:
    """The year asked for (this year when none), and a plain sentence for one that is not."""
    console_ = _console(request)
    now = utcnow().astimezone(console_.tz).year
    raw = request.query.get("year", "").strip()[:8]
    if not raw:
        return now, ""
    if raw.isascii() and raw.isdigit() and FIRST_YEAR <= int(raw) <= now + 1:
        return int(raw), ""
    return now, console_.runtime.content.text(visit.language, "console.bad_year")


async def _summary(request: web.Request, visit: Visit, year: int) -> Summary:
    console_ = _console(request)
    content, lang = console_.runtime.content, visit.language
    async with console_.runtime.sessions() as session:
        found: Year = await statistics.annual(session, year, console_.tz)
    roles = dict(content.options(lang, "roles"))
    topics = dict(content.options(lang, "alert_topics"))

    def named(row: GroupYear, name: str) -> list[str]:
        return [name, *(str(getattr(row, column)) for column in COLUMNS)]

    unknown = content.text(lang, "console.unknown")
    rows = [named(row, roles.get(row.group, unknown)) for row in found.groups]
    rows.append(named(found.total, content.text(lang, "console.annual_total")))
    return Summary(
        year=year,
        title=content.text(
            lang, "console.annual_title", operator=console_.runtime.settings.bot.operator, year=year
        ),
        columns=[
            content.text(lang, "console.annual_group"),
            *(content.text(lang, f"console.annual_{column}") for column in COLUMNS),
        ],
        rows=rows,
        alerts_sent=found.alerts_sent,
        topics=[(topics.get(topic, topic), str(count)) for topic, count in found.alerts_by_topic],
    )


@coordinators_only
async def annual_page(request: web.Request, visit: Visit) -> web.Response:
    year, problem = _year(request, visit)
    summary = await _summary(request, visit, year)
    now = utcnow().astimezone(_console(request).tz).year
    return page(request, "annual.html", visit.language, visit=visit, summary=summary,
                problem=problem, years=list(range(now, FIRST_YEAR - 1, -1))[:15])  # fmt: skip


@coordinators_only
async def annual_pdf_view(request: web.Request, visit: Visit) -> web.Response:
    console_ = _console(request)
    content, lang = console_.runtime.content, visit.language
    year, _problem = _year(request, visit)
    summary = await _summary(request, visit, year)
    printed = content.text(lang, "console.printed", operator=console_.runtime.settings.bot.operator,
                           when=content.format_when(lang, utcnow(), console_.tz))  # fmt: skip
    extra = [(content.text(lang, "console.annual_alerts", count=summary.alerts_sent),
              summary.topics)]  # fmt: skip
    body = annual_pdf(summary.title, summary.columns, summary.rows, extra, printed)
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="annual-{year}.pdf"'},
    )
