"""Admins add and remove coordinators; everyone else is refused and audited."""

from __future__ import annotations

from sqlalchemy import select

from bot.runtime import Runtime
from bot.storage.models import AuditEntry, Report
from tests.chat import Chat
from tests.test_report import quick_report


async def test_admin_adds_a_coordinator_who_can_then_triage(runtime: Runtime) -> None:
    admin = Chat(runtime.core, "leitstelle")
    await admin.send("/coordinators add console mara")
    assert "console:mara ist jetzt Koordinator/in" in admin.screen
    await admin.send("/coordinators")
    assert "console:mara" in admin.screen and "console:leitstelle" in admin.screen

    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    await driver.send("/report")
    await quick_report(driver)
    await driver.press("Anonym senden")
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None
    mara = Chat(runtime.core, "mara")
    await mara.send(f"/triage {report.reference} police")
    assert "an die Polizei gegeben" in mara.screen

    await admin.send("/coordinators remove console mara")
    assert "nicht mehr" in admin.screen
    await mara.send(f"/triage {report.reference} ack")
    assert "gesehen" not in mara.screen
    async with runtime.sessions() as session:
        fresh = await session.get(Report, report.id)
        assert fresh is not None and fresh.status == "police"
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "coordinator_added" in actions and "coordinator_removed" in actions


async def test_coordinator_who_is_not_admin_cannot_change_coordinators(runtime: Runtime) -> None:
    runtime.settings.console.coordinators = ["leitstelle", "lea"]
    lea = Chat(runtime.core, "lea")
    await lea.send("/coordinators add console eve")
    assert "nur Admins" in lea.screen
    await lea.send("/coordinators remove console leitstelle")
    assert "nur Admins" in lea.screen
    async with runtime.sessions() as session:
        refused = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "refused"))
        ).all()
    assert len(refused) == 2


async def test_a_driver_cannot_list_or_change_coordinators(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("/coordinators add console driver")
    assert "nur Koordinatorinnen" in chat.screen


async def test_configured_coordinators_are_removed_only_in_the_config(runtime: Runtime) -> None:
    admin = Chat(runtime.core, "leitstelle")
    await admin.send("/coordinators remove console leitstelle")
    assert "Konfiguration" in admin.screen
    await admin.send("/coordinators add pigeon carrier")
    assert "So geht's" in admin.screen
    await admin.send("/coordinators add telegram abc")  # Telegram ids are numbers
    assert "keine telegram-Kennung" in admin.screen and "123456789" in admin.screen
    await admin.send("/coordinators add matrix leitstelle")
    assert "@name:example.org" in admin.screen


async def test_a_name_removed_from_the_config_is_no_coordinator_any_more(runtime: Runtime) -> None:
    runtime.settings.console.coordinators = ["leitstelle", "ole"]
    ole = Chat(runtime.core, "ole")
    await ole.send("/broadcasts")
    assert "nur Koordinatorinnen" not in ole.screen
    runtime.settings.console.coordinators = ["leitstelle"]
    await ole.send("/broadcasts")
    assert "nur Koordinatorinnen" in ole.screen
