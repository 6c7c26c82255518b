"""The statistics page: the partnership's figures for a date range, each chart drawn on the
server as SVG with its table beside it and a CSV download (`bot/storage/statistics.py`
counts; this module names and lays out)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from bot.storage import statistics
from bot.storage.statistics import Period, Picture
from bot.web.auth import Visit
from bot.web.charts import Chart, bar_chart
from bot.web.pdf import printable
from bot.web.views import _console, coordinators_only, page

# figure key -> (the Picture's field, the option list naming its rows; "" = the key itself)
FIGURES = {
    "weeks": ("per_week", ""),
    "months": ("per_month", ""),
    "categories": ("by_category", "categories"),
    "regions": ("by_region", "regions"),
    "statuses": ("by_status", "status"),
    "people_roles": ("people_by_role", "roles"),
    "people_regions": ("people_by_region", "regions"),
    "people_languages": ("people_by_language", "languages"),
    "people_transports": ("people_by_transport", "alert_transports"),
}
# The single numbers, in the order the page shows them.
NUMBERS = (
    "reports", "passed_to_police", "triaged", "alerts_sent", "deliveries",
    "people_reached", "understood", "people",
)  # fmt: skip

# ... and with the shares and the median, as the page shows them.
SHOWN = (
    "reports", "passed_to_police", "police_share", "triaged", "median_triage",
    "alerts_sent", "deliveries", "people_reached", "understood", "understood_rate", "people",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure: its rows (id, label, count), and its chart."""

    key: str
    rows: tuple[tuple[str, str, int], ...]
    chart: Chart

    @property
    def total(self) -> int:
        return sum(count for _id, _label, count in self.rows)


def period_of(request: web.Request, visit: Visit) -> tuple[Period, str]:
    """The date range asked for (whole days in the deployment's zone), and a plain
    sentence when a date could not be read (that bound is left open)."""
    console_ = _console(request)
    problem = ""

    def day(name: str) -> date | None:
        nonlocal problem
        raw = request.query.get(name, "").strip()[:32]
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            problem = console_.runtime.content.text(visit.language, "console.bad_date")
            return None

    since, until = day("since"), day("until")
    if since and until and until < since:
        problem = console_.runtime.content.text(visit.language, "console.bad_range")
        since = until = None
    tz = console_.tz
    return (
        Period(
            since=None if since is None else datetime.combine(since, time(), tz),
            until=None
            if until is None
            else datetime.combine(until + timedelta(days=1), time(), tz),
        ),
        problem,
    )


async def _picture(request: web.Request, visit: Visit) -> tuple[Picture, str]:
    console_ = _console(request)
    period, problem = period_of(request, visit)
    async with console_.runtime.sessions() as session:
        return await statistics.picture(session, period, console_.tz), problem


def figures(request: web.Request, visit: Visit, found: Picture) -> list[Figure]:
    content = _console(request).runtime.content
    unknown = content.text(visit.language, "console.unknown")
    made = []
    for key, (field, options) in FIGURES.items():
        names = dict(content.options(visit.language, options)) if options else {}
        rows = tuple(
            (oid, names.get(oid, unknown if oid == statistics.UNKNOWN else oid), count)
            for oid, count in getattr(found, field)
        )
        # The chart's labels without emoji: a police PC often has no emoji font.
        chart = bar_chart([(printable(label), count) for _i, label, count in rows])
        made.append(Figure(key, rows, chart))
    return made


def numbers(request: web.Request, visit: Visit, found: Picture) -> list[tuple[str, str]]:
    """The single figures as (key, shown value)."""
    content = _console(request).runtime.content
    lang = visit.language

    def share(part: float) -> str:
        return content.text(lang, "console.percent", percent=round(100 * part))

    shown = {key: str(getattr(found, key)) for key in NUMBERS}
    shown["police_share"] = share(found.police_share)
    shown["understood_rate"] = share(found.understood_rate)
    wait = found.median_triage
    shown["median_triage"] = (
        "—" if wait is None else content.text(lang, "console.duration",
                                              hours=int(wait.total_seconds() // 3600),
                                              minutes=int(wait.total_seconds() % 3600 // 60))
    )  # fmt: skip
    return [(key, shown[key]) for key in SHOWN]


@coordinators_only
async def statistics_page(request: web.Request, visit: Visit) -> web.Response:
    found, problem = await _picture(request, visit)
    return page(request, "statistics.html", visit.language, visit=visit, problem=problem,
                numbers=numbers(request, visit, found), figures=figures(request, visit, found),
                query=request.query, query_string=request.query_string,
                figure_key="console.figure_", number_key="console.number_")  # fmt: skip


# A cell a spreadsheet would run as a formula (OWASP: CSV injection) starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text that would start a formula, quoted as text with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(name: str, header: list[str], rows: list[list[Any]]) -> web.Response:
    """A CSV download (UTF-8 with a byte-order mark, so spreadsheets read the umlauts);
    no text in it is run as a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_cell(value) for value in header])
    writer.writerows([_cell(value) for value in row] for row in rows)
    return web.Response(
        body=("\ufeff" + buffer.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@coordinators_only
async def statistics_csv(request: web.Request, visit: Visit) -> web.Response:
    """One figure as CSV (id, label, count), or the single numbers ("figures")."""
    key = request.match_info["figure"]
    found, _problem = await _picture(request, visit)
    if key == "figures":
        return csv_response("figures.csv", ["figure", "value"],
                            [[k, v] for k, v in numbers(request, visit, found)])  # fmt: skip
    chosen = [figure for figure in figures(request, visit, found) if figure.key == key]
    if not chosen:
        raise web.HTTPNotFound()
    return csv_response(f"{key}.csv", ["id", "label", "count"],
                        [list(row) for row in chosen[0].rows])  # fmt: skip
