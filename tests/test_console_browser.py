"""The coordinator console in a real browser: Debian's Chromium (/usr/bin/chromium, which
.ci/run installs), driven by Playwright. A report made through the terminal chat is found,
filtered, opened (photo and marker), triaged and answered; the reporter's chat gets the
status. Screenshots of the inbox, the map and the report page go to tests/artefacts/.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from bot.runtime import Runtime
from tests.browser_fixtures import log_in, shoot
from tests.chat import Chat
from tests.console_fixtures import COORDINATOR, ConsoleSite, report_with_photo
from tests.test_console import reporter_reads


async def second_report(runtime: Runtime, tmp_path: Path) -> None:
    """Another driver reports from Köln, without a photo."""
    other = Chat(runtime.core, "bea")
    await other.onboard()
    await other.send("/report")
    await other.send("2")
    await other.send("Jemand zapft Diesel aus einem Lkw ab")
    await other.send("/location 50.9413 6.9583")
    await other.send("/skip")
    await other.press("Rückfragen erlaubt")


async def test_a_coordinator_finds_opens_and_triages_a_report_in_the_browser(
    console_site: ConsoleSite, runtime: Runtime, page: Page, tmp_path: Path
) -> None:
    reference = await report_with_photo(runtime, tmp_path)
    await log_in(page, console_site)

    # The inbox: the report, unread, with its photo badge; counts per status.
    row = page.locator(f'tr[data-reference="{reference}"]')
    await expect(row).to_have_class("unread")
    await expect(row).to_contain_text("Foto")
    await expect(page.locator("#counts")).to_contain_text("neu: 1")

    # A new report appears without reloading.
    await second_report(runtime, tmp_path)
    await expect(page.locator("#reports tbody tr")).to_have_count(2)
    await expect(page.locator("#counts")).to_contain_text("neu: 2")
    await shoot(page, "inbox")

    # Filters: "with photo" leaves the first report; a status none has leaves nothing.
    await page.check('input[name="photo"]')
    await page.click("#apply-filters")
    await expect(page.locator("#reports tbody tr")).to_have_count(1)
    await expect(page.locator(f'tr[data-reference="{reference}"]')).to_be_visible()
    await page.select_option('select[name="status"]', "police")
    await page.click("#apply-filters")
    await expect(page.locator("#none-found")).to_be_visible()

    # The report: the wanted-sheet, the photo shown, the marker on the map.
    await page.goto(console_site.url(f"/console/reports/{reference}"))
    await expect(page.locator("#sheet")).to_contain_text("Zwei Männer schlitzen")
    photo = page.locator("img.photo")
    await expect(photo).to_be_visible()
    assert await photo.evaluate("image => image.complete && image.naturalWidth") == 96
    await expect(page.locator("#report-map path.marker")).to_have_count(1)
    await expect(page.locator("#contact")).to_contain_text("Kontakt erlaubt")
    await shoot(page, "report")

    # Triage from the page: the chat's triage, so the reporter's chat gets the status.
    await page.click("#set-police")
    await expect(page.locator(".flash")).to_contain_text("an die Polizei gegeben")
    await expect(page.locator("#status")).to_have_text("an die Polizei gegeben")
    await expect(page.locator("#history")).to_contain_text(f"von {COORDINATOR}")
    await page.fill("#reply textarea", "Danke! Die Polizei meldet sich bei Ihnen.")
    await page.click("#send-reply")
    await expect(page.locator(".flash")).to_contain_text("Nachricht")
    assert await reporter_reads(runtime) == [
        f"Neuigkeit zu Ihrer Meldung {reference}: an die Polizei gegeben.",
        "Danke! Die Polizei meldet sich bei Ihnen.",
    ]

    # The map: both reports as markers, coloured by status; a click opens the report.
    await page.click("#nav-map")
    await expect(page.locator("#map")).to_have_attribute("data-markers", "2")
    await expect(page.locator("#map path.marker.status-police")).to_have_count(1)
    await expect(page.locator("#map path.marker.status-new")).to_have_count(1)
    await shoot(page, "map")
    await page.locator("#map path.marker.status-police").click()
    await expect(page).to_have_url(console_site.url(f"/console/reports/{reference}"))
    await expect(page.locator("#sheet")).to_be_visible()

    # The same console in English, from the same content files as the bot.
    async with page.expect_navigation():
        await page.select_option('select[name="language"]', "en")
    await expect(page.locator("#nav-inbox")).to_have_text("Inbox")
    await expect(page.locator("#status")).to_have_text("passed to the police")


async def test_a_plain_users_link_and_a_used_link_are_refused_in_the_browser(
    console_site: ConsoleSite, runtime: Runtime, page: Page
) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await page.goto(console_site.link("console:driver"))
    await page.click("#login")
    await expect(page.locator("#message")).to_contain_text("Dieser Link gilt nicht")
    await expect(page.locator("#nav-inbox")).to_have_count(0)

    link = console_site.link(COORDINATOR)
    await page.goto(link)
    await page.click("#login")
    await expect(page.locator("#nav-inbox")).to_be_visible()
    await page.click("#logout")
    await expect(page.locator("#message")).to_contain_text("abgemeldet")
    await page.goto(link)  # the same link once more
    await page.click("#login")
    await expect(page.locator("#message")).to_contain_text("Dieser Link gilt nicht")
    await page.goto(console_site.url("/console/"))
    await expect(page.locator("#message")).to_contain_text("abgemeldet")


async def test_a_triage_without_the_csrf_token_is_refused_in_the_browser(
    console_site: ConsoleSite, runtime: Runtime, page: Page, tmp_path: Path
) -> None:
    reference = await report_with_photo(runtime, tmp_path)
    await log_in(page, console_site)
    await page.goto(console_site.url(f"/console/reports/{reference}"))
    await page.evaluate("document.querySelector('#triage input[name=csrf]').remove()")
    await page.click("#set-police")
    await expect(page.locator("#message")).to_contain_text("nichts wurde geändert")
    await page.goto(console_site.url(f"/console/reports/{reference}"))
    await expect(page.locator("#status")).to_have_text("neu")
    assert await reporter_reads(runtime) == []
