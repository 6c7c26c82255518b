"""The admin pages in the real browser: the admin adds a coordinator (the chat's
/coordinators add, audited), who can then log in but not reach the admin pages; the audit
log is filtered and exported as CSV; removing the coordinator lets them out at their next
click."""

from __future__ import annotations

import csv
import io

from playwright.async_api import Browser, Page, expect

from bot.runtime import Runtime
from tests.browser_fixtures import log_in
from tests.console_fixtures import ConsoleSite


async def test_an_admin_adds_a_coordinator_who_cannot_reach_the_admin_pages(
    console_site: ConsoleSite, runtime: Runtime, page: Page, browser: Browser
) -> None:
    await log_in(page, console_site)  # console:leitstelle, an admin in the default config
    await page.click("#nav-admin")
    await expect(page.locator('#coordinators tr[data-who="console:leitstelle"]')).to_contain_text(
        "Admin"
    )
    await page.fill("#platform-id", "zweite")
    await page.select_option("#transport", "console")
    await page.click("#add")
    await expect(page.locator(".flash")).to_contain_text("console:zweite ist jetzt Koordinator/in.")
    await expect(page.locator('#coordinators tr[data-who="console:zweite"]')).to_be_visible()
    # An ID with a space: a plain sentence, nothing added.
    await page.fill("#platform-id", "zwei te")
    await page.click("#add")
    await expect(page.locator(".flash")).to_contain_text("ohne Leerzeichen")

    # The new coordinator logs in: the desk is theirs, the admin pages are not.
    context = await browser.new_context(locale="de-DE")
    other = await context.new_page()
    try:
        await log_in(other, console_site, "console:zweite")
        await expect(other.locator("#nav-admin")).to_have_count(0)
        await expect(other.locator("#nav-statistics")).to_be_visible()
        for path in ("/console/admin", "/console/admin/audit"):
            answer = await other.goto(console_site.url(path))
            assert answer is not None and answer.status == 403
            await expect(other.locator("#message")).to_contain_text("nur die Admins")
        answer = await other.request.get(console_site.url("/console/admin/audit.csv"))
        assert answer.status == 403 and "coordinator_added" not in await answer.text()

        # The audit log: filtered by action, then exported.
        await page.click("#audit-link")
        await page.select_option('select[name="action"]', "coordinator_added")
        await page.click("#apply-audit")
        rows = page.locator("#audit tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator(".subject")).to_have_text("console:zweite")
        await expect(rows.first).to_contain_text("console:leitstelle")
        await page.goto(console_site.url("/console/admin/audit?action=refused"))
        await expect(page.locator("#audit tbody tr .subject")).to_have_text(
            ["console_admin", "console_admin", "console_admin"]
        )
        answer = await page.request.get(console_site.url("/console/admin/audit.csv"))
        assert answer.status == 200
        exported = list(csv.DictReader(io.StringIO((await answer.body()).decode("utf-8-sig"))))
        assert {"coordinator_added", "refused", "console_login"} <= {r["action"] for r in exported}
        assert any(
            r["action"] == "coordinator_added" and r["actor"] == "console:leitstelle"
            for r in exported
        )
        await page.goto(console_site.url("/console/admin/audit?since=morgen"))
        await expect(page.locator("#problems")).to_contain_text("Datum")

        # Removed: let out at the next click.
        await page.goto(console_site.url("/console/admin"))
        await page.locator('tr[data-who="console:zweite"] button.remove').click()
        await expect(page.locator(".flash")).to_contain_text("console:zweite ist nicht mehr")
        await other.goto(console_site.url("/console/"))
        await expect(other.locator("#message")).to_contain_text("abgemeldet")
    finally:
        await context.close()
