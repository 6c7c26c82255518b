"""The statistics page in the real browser: reports, triage, an alert and its receipts made
through the terminal chat, then every figure on the page — numbers, each chart's table and
a CSV download — compared with a direct SQL count on the same database; the date range
filter narrows them, and a date that cannot be read gets a plain sentence."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Page, expect
from sqlalchemy import text

from bot.runtime import Runtime
from bot.storage.models import utcnow
from tests.browser_fixtures import log_in, shoot
from tests.chat import Chat
from tests.console_fixtures import REFERENCE, ConsoleSite, report_with_photo
from tests.test_alerts import compose
from tests.test_console_browser import second_report

TZ = ZoneInfo("Europe/Berlin")
PEOPLE = "FROM users WHERE consent_at IS NOT NULL AND active"
GROUPED = {
    "categories": "SELECT category, count(*) FROM reports GROUP BY category",
    "statuses": "SELECT status, count(*) FROM reports GROUP BY status",
    "regions": "SELECT coalesce(users.region, 'unknown'), count(*) FROM reports "
    "LEFT JOIN users ON users.id = reports.user_id GROUP BY coalesce(users.region, 'unknown')",
    "people_roles": f"SELECT coalesce(role, 'unknown'), count(*) {PEOPLE} GROUP BY role",
    "people_regions": f"SELECT coalesce(region, 'unknown'), count(*) {PEOPLE} GROUP BY region",
    "people_languages": f"SELECT language, count(*) {PEOPLE} GROUP BY language",
    "people_transports": f"SELECT transport, count(*) {PEOPLE} GROUP BY transport",
}
SINGLE = {
    "reports": "SELECT count(*) FROM reports",
    "passed_to_police": "SELECT count(*) FROM reports WHERE status = 'police' OR reference IN "
    "(SELECT subject FROM audit_log WHERE action = 'report_status' "
    "AND CAST(details AS TEXT) LIKE '%police%')",
    "triaged": "SELECT count(DISTINCT subject) FROM audit_log WHERE action = 'report_status'",
    "alerts_sent": "SELECT count(DISTINCT broadcast_id) FROM outbox WHERE broadcast_id IS NOT NULL",
    "deliveries": "SELECT count(*) FROM (SELECT DISTINCT broadcast_id, user_id FROM outbox "
    "WHERE broadcast_id IS NOT NULL AND status = 'sent') AS pairs",
    "people_reached": "SELECT count(DISTINCT user_id) FROM outbox "
    "WHERE broadcast_id IS NOT NULL AND status = 'sent'",
    "understood": "SELECT count(*) FROM acknowledgements",
    "people": f"SELECT count(*) {PEOPLE}",
}


async def sql(runtime: Runtime, query: str) -> list[Any]:
    async with runtime.sessions() as session:
        return list((await session.execute(text(query))).all())


async def the_partnerships_week(runtime: Runtime, tmp_path: Path) -> None:
    """Three reports (two regions), one passed to the police and one seen; an alert to the
    taxi drivers in Köln, delivered to both and understood by one."""
    await report_with_photo(runtime, tmp_path)
    await second_report(runtime, tmp_path)
    cem = Chat(runtime.core, "cem")
    await cem.onboard(role="Tankstelle", region="Münster")
    await cem.send("/report")
    await cem.send("2")
    await cem.send("Ein Mann tankt und fährt ohne zu zahlen davon")
    await cem.send("Aral Münster Weseler Straße")
    await cem.send("/skip")
    await cem.press("anonym")
    assert REFERENCE.search(cem.screen), cem.screen
    references = [row[0] for row in await sql(runtime, "SELECT reference FROM reports ORDER BY id")]
    leitstelle = Chat(runtime.core, "leitstelle")
    await leitstelle.send(f"/triage {references[0]} police")
    await leitstelle.send(f"/triage {references[2]} ack")
    taxis = []
    for name in ("taxi_anna", "taxi_ben"):
        taxi = Chat(runtime.core, name)
        await taxi.onboard(role="Taxi", region="Köln", language="English")
        taxis.append(taxi)
    await compose(leitstelle)
    await leitstelle.press("Senden")
    for taxi in taxis:
        await taxi.console.show_waiting()
    await taxis[0].send("1")  # "✅ Understood"


async def table(page: Page, key: str) -> dict[str, int]:
    rows = await page.locator(f"#table-{key} tbody tr").evaluate_all(
        "rows => rows.map(row => [row.dataset.key, row.querySelector('.value').textContent])"
    )
    return {str(name): int(value) for name, value in rows}


async def test_every_figure_on_the_statistics_page_is_the_databases_count(
    console_site: ConsoleSite, runtime: Runtime, page: Page, tmp_path: Path
) -> None:
    await the_partnerships_week(runtime, tmp_path)
    await log_in(page, console_site)
    await page.click("#nav-statistics")
    await expect(page.locator("#number-reports")).to_have_text("3")

    for key, query in GROUPED.items():
        expected = {str(name): int(count) for name, count in await sql(runtime, query)}
        assert await table(page, key) == expected, key
        # Each chart is drawn on the server: one bar per row of its table.
        bars = page.locator(f"#figure-{key} svg.chart rect.bar")
        await expect(bars).to_have_count(len(expected))
    for key, query in SINGLE.items():
        (count,) = (await sql(runtime, query))[0]
        await expect(page.locator(f"#number-{key}")).to_have_text(str(count))
    reports, police = (await sql(runtime, SINGLE["reports"]))[0][0], 1
    await expect(page.locator("#number-police_share")).to_have_text(
        f"{round(100 * police / reports)} %"
    )
    await expect(page.locator("#number-understood_rate")).to_have_text("50 %")
    week = (utcnow().astimezone(TZ)).isocalendar()
    assert await table(page, "weeks") == {f"{week[0]}-W{week[1]:02d}": reports}
    assert await table(page, "months") == {utcnow().astimezone(TZ).strftime("%Y-%m"): reports}
    # Both triages came seconds after their reports: the median is under a minute.
    await expect(page.locator("#number-median_triage")).to_have_text("0 Std. 0 Min.")
    await shoot(page, "statistics")

    # A figure's CSV download says what its table says.
    answer = await page.request.get(console_site.url("/console/statistics/categories.csv"))
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await answer.body()).decode("utf-8-sig"))))
    assert rows[0] == ["id", "label", "count"]
    assert {row[0]: int(row[2]) for row in rows[1:]} == await table(page, "categories")

    # From tomorrow on there is nothing yet; people are counted as they are today.
    tomorrow = (utcnow() + timedelta(days=1)).astimezone(TZ).date().isoformat()
    await page.fill('input[name="since"]', tomorrow)
    await page.click("#apply-period")
    await expect(page.locator("#number-reports")).to_have_text("0")
    await expect(page.locator("#number-alerts_sent")).to_have_text("0")
    await expect(page.locator("#figure-categories .none")).to_be_visible()
    (people,) = (await sql(runtime, SINGLE["people"]))[0]
    await expect(page.locator("#number-people")).to_have_text(str(people))

    # A date that cannot be read: a plain sentence, and the figures of all time.
    await page.goto(console_site.url("/console/statistics?since=gestern"))
    await expect(page.locator("#problems")).to_contain_text("Ein Datum war nicht lesbar")
    await expect(page.locator("#number-reports")).to_have_text(str(reports))


async def test_the_annual_summary_gives_the_years_figures_by_group_and_as_pdf(
    console_site: ConsoleSite, runtime: Runtime, page: Page, tmp_path: Path
) -> None:
    await the_partnerships_week(runtime, tmp_path)
    await log_in(page, console_site)
    await page.click("#nav-statistics")
    await page.click("#annual-link")
    year = utcnow().astimezone(TZ).year
    await expect(page.locator("#annual-title")).to_contain_text(f"das Jahr {year} in Zahlen")

    async def row(selector: str) -> list[str]:
        cells = page.locator(f"{selector} td.value")
        return [text.strip() for text in await cells.all_inner_texts()]

    expected_total = [
        str((await sql(runtime, SINGLE[key]))[0][0])
        for key in ("reports", "passed_to_police", "people", "people_reached", "understood")
    ]
    assert await row("#annual-total") == expected_total
    # By group: the taxi drivers sent nothing, both were reached, one pressed "Understood";
    # the truck drivers sent the two reports from Köln, one went to the police.
    taxis = page.locator("#annual tbody tr", has_text="Taxi / Mietwagen")
    assert [t.strip() for t in await taxis.locator("td.value").all_inner_texts()] == [
        "0", "0", "2", "2", "1",
    ]  # fmt: skip
    trucks = page.locator("#annual tbody tr", has_text="Lkw-Fahrer/in")
    assert [t.strip() for t in await trucks.locator("td.value").all_inner_texts()] == [
        "2", "1", "2", "0", "0",
    ]  # fmt: skip
    await expect(page.locator("#annual-alerts")).to_have_text("Gesendete Warnungen: 1")

    answer = await page.request.get(console_site.url(f"/console/annual.pdf?year={year}"))
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert (await answer.body()).startswith(b"%PDF-")

    # Last year: nothing yet; a year that cannot be: a plain sentence, this year.
    await page.select_option('select[name="year"]', str(year - 1))
    await page.click("#apply-year")
    assert await row("#annual-total") == ["0", "0", "0", "0", "0"]
    await page.goto(console_site.url("/console/annual?year=1900"))
    await expect(page.locator("#problems")).to_contain_text("keine Zahlen")
    assert await row("#annual-total") == expected_total
