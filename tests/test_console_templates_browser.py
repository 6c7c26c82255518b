"""Alert templates in the real browser: saved in three languages, edited, started an alert
from, deleted; the chat's /alert_templates shows the same, and a driver may not use them."""

from __future__ import annotations

from playwright.async_api import Page, expect
from sqlalchemy import select

from bot.runtime import Runtime
from bot.storage.models import AlertTemplate, AuditEntry
from tests.browser_fixtures import log_in
from tests.chat import Chat
from tests.console_fixtures import ConsoleSite

NAME = "Planenschlitzer-Serie auf der A1"


async def saved(runtime: Runtime) -> list[AlertTemplate]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(AlertTemplate))).all())


async def test_a_coordinator_keeps_an_alert_template_and_starts_an_alert_from_it(
    console_site: ConsoleSite, runtime: Runtime, page: Page
) -> None:
    await log_in(page, console_site)
    await page.click("#nav-alerts")
    await page.click("#templates-link")
    await expect(page.locator("#none-found")).to_be_visible()

    # Without a German text: the chat's answer, nothing saved.
    await page.fill("#template-name", NAME)
    await page.evaluate("document.querySelector('#template-text-de').removeAttribute('required')")
    await page.click("#save-template")
    await expect(page.locator(".flash")).to_be_visible()
    assert await saved(runtime) == []

    await page.fill("#template-name", NAME)
    await page.select_option("#template-topic", "cargo_theft")
    await page.fill("#template-text-de", "Serie aufgeschlitzter Planen auf Rastplätzen der A1.")
    await page.fill("#template-text-en", "A series of slashed tarpaulins at A1 rest areas.")
    await page.fill("#template-text-pl", "Seria pociętych plandek na parkingach przy A1.")
    await page.click("#save-template")
    await expect(page.locator(".flash")).to_contain_text(f"Vorlage „{NAME}“ ist gespeichert.")
    row = page.locator('#templates tr[data-template="1"]')
    await expect(row.locator(".name")).to_have_text(NAME)

    # Edited: the same template, a new name.
    await row.locator("a.edit").click()
    await expect(page.locator("#template-text-pl")).to_have_value(
        "Seria pociętych plandek na parkingach przy A1."
    )
    await page.fill("#template-name", f"{NAME} (Köln–Wuppertal)")
    await page.click("#save-template")
    await expect(row.locator(".name")).to_have_text(f"{NAME} (Köln–Wuppertal)")
    [template] = await saved(runtime)
    assert template.topic == "cargo_theft" and set(template.texts) == {"de", "en", "pl"}

    # The chat sees the same template; a driver may not touch them.
    leitstelle = Chat(runtime.core, "leitstelle")
    await leitstelle.send("/alert_templates")
    assert f"#1 · {NAME} (Köln–Wuppertal)" in leitstelle.screen
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/alert_templates")
    assert NAME not in driver.screen

    # An alert started from it: its texts and topic filled in.
    await row.locator("a.use").click()
    await expect(page.locator("#text-de")).to_have_value(
        "Serie aufgeschlitzter Planen auf Rastplätzen der A1."
    )
    await expect(page.locator("#text-en")).to_have_value(
        "A series of slashed tarpaulins at A1 rest areas."
    )
    await expect(page.locator("#topic")).to_have_value("cargo_theft")

    await page.goto(console_site.url("/console/templates"))
    await page.locator('tr[data-template="1"] button.delete').click()
    await expect(page.locator(".flash")).to_contain_text("ist gelöscht")
    await expect(page.locator("#none-found")).to_be_visible()
    async with runtime.sessions() as session:
        actions = (
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("alert_template%"))
            )
        ).all()
    assert actions == ["alert_template_saved", "alert_template_saved", "alert_template_deleted"]
