"""Trust: one access table, enforced by the Core for every role; reports reach only coordinators.

The whole table is walked for every role in content, a stranger who has not agreed yet,
a coordinator and an admin: each refusal is answered politely and audited, each allowed
use goes through. What the table should say is written down here a second time
(STAFF_ONLY, ADMIN_ONLY), so a careless change to the table fails too.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.core.access import ADMIN, COORDINATOR, Rule
from bot.core.events import Reply
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import AuditEntry, Broadcast, OutboxMessage, Report, User, utcnow
from handlers.access import ACCESS
from tests.chat import Chat
from tests.test_alerts import add_broadcast, add_user
from tests.test_report import quick_report

ROLES = (
    "truck_driver",
    "dispatcher",
    "haulage_company",
    "taxi_driver",
    "station_staff",
    "police_officer",
    "other",
)
# What only coordinators may do: anything that changes or reveals shared state.
STAFF_ONLY = {
    "/triage",
    "tri",
    "trn",
    "/broadcast",
    "bc",
    "bcp",
    "/broadcast_status",
    "/broadcasts",
    "bcx",
    "/alert_template",  # alert templates
    "/alert_templates",
    "atp",
    "atpx",
    "/coordinators",
    "/reports",
    "rpt",
    "/reply",
    "rrp",
    "rrpf",
    "/console",  # a login link to the web console
}
# Coordinators who are also admins, on top: changing who is a coordinator.
ADMIN_ONLY = {"/coordinators add", "/coordinators remove"}
# Usable before onboarding and consent.
PUBLIC = {
    "/start",
    "onb",
    "/menu",
    "/help",
    "/cancel",
    "/stop",
    "/tips",
    "/tipps",
    "/porady",
    "/alarm",
    "/stiller_alarm",
    "tip",
    "lang",
}
# Answered only in a direct chat with the person: their own data and dialogues.
PRIVATE = {
    "/start", "onb", "lang", "/report", "/melden", "/zglos", "rep", "/myreports", "/details",
    "repd", "/alerts", "alt", "alf", "/settings", "set", "setf", "/mydata", "/delete_me",
    "/deleteme", "priv",
}  # fmt: skip
# Who walks the table: (chat name, roles the table should see, onboarded?).
PEOPLE = [
    *[(f"p_{role}", frozenset({role}), True) for role in ROLES],
    ("stranger", frozenset(), False),
    ("lea", frozenset({COORDINATOR}), False),  # a coordinator, not an admin
    ("leitstelle", frozenset({COORDINATOR, ADMIN}), False),  # coordinator and admin
]


def expected_allowed(key: str, who: frozenset[str]) -> bool:
    if key in ADMIN_ONLY:
        return {COORDINATOR, ADMIN} <= who
    if key in STAFF_ONLY:
        return COORDINATOR in who
    return True


def probes(report_id: int, reference: str, broadcast_id: int) -> dict[str, tuple[str, str]]:
    """How to exercise each key: ("send", line), ("press", choice) or ("flow", choice)."""
    found: dict[str, tuple[str, str]] = {}
    for key in ACCESS:
        if key.startswith("/"):
            found[key] = ("send", key)
    found["/triage"] = ("send", f"/triage {reference} ack")
    found["/broadcast_status"] = ("send", f"/broadcast_status {broadcast_id}")
    found["/coordinators add"] = ("send", "/coordinators add")  # the usage, changes nothing
    found["/coordinators remove"] = ("send", "/coordinators remove")
    found["/details"] = ("send", f"/details {reference}")
    found["/reply"] = ("send", f"/reply {reference} Danke für den Hinweis")
    found.update(
        {
            "tri": ("press", f"tri:{report_id}:ack"),
            "ack": ("press", f"ack:{broadcast_id}"),
            "bcx": ("press", f"bcx:{broadcast_id}"),
            "atpx": ("press", "atpx:1"),
            "alt": ("press", "alt:off"),
            "set": ("press", "set:nothing"),
            "priv": ("press", "priv:keep"),
            "tip": ("press", "tip:~all"),
            "bcp": ("flow", "bcp:cancel"),
            "rpt": ("press", f"rpt:{report_id}"),
            "rrp": ("press", f"rrp:{report_id}"),
            "lang": ("press", "lang:de"),
        }
    )
    for flow in ("onb", "rep", "repd", "trn", "rrpf", "alf", "setf", "bc", "atp"):
        found[flow] = ("flow", f"{flow}:~cancel")
    return found


async def refusals(runtime: Runtime) -> list[AuditEntry]:
    async with runtime.sessions() as session:
        query = select(AuditEntry).where(AuditEntry.action == "refused").order_by(AuditEntry.id)
        return list((await session.scalars(query)).all())


async def enter_flow(runtime: Runtime, name: str, flow: str) -> None:
    """Put a person into a dialogue, as if they had started it (when they still could)."""
    async with runtime.engine.begin() as connection:
        person = await repos.load_person(connection, "console", name, name, name, "de")
        person.state.flow = flow
        person.state.data = {"mode": "ask", "step": "", "answers": {}, "trail": []}
        await connection.run_sync(repos.write_event, person, [])


async def flow_of(runtime: Runtime, name: str) -> str:
    """The dialogue a terminal person is in, as the next event of theirs would find it."""
    async with runtime.engine.connect() as connection:  # read only: never committed
        person = await repos.load_person(connection, "console", name, name, name, "de")
    return person.state.flow


def shown(replies: list[Reply]) -> str:
    return "\n".join(f"{reply.lead}\n{reply.title}\n{reply.text}" for reply in replies)


def test_the_table_says_what_is_intended() -> None:
    for key, rule in ACCESS.items():
        assert rule.public == (key in PUBLIC), key
        assert rule.private == (key in PRIVATE), key
        if key in ADMIN_ONLY:
            assert rule.roles == frozenset({ADMIN}), key
        elif key in STAFF_ONLY:
            assert rule.roles == frozenset({COORDINATOR}), key
        else:
            assert rule.roles is None, key


def test_a_missing_or_stale_rule_stops_the_start() -> None:
    from bot.core.access import check_complete

    rules = {"/report": Rule(), "rep": Rule()}
    check_complete(rules, ["report"], ["rep"])
    with pytest.raises(ValueError, match="no access rule for /myreports"):
        check_complete(rules, ["report", "myreports"], ["rep"])
    with pytest.raises(ValueError, match="unknown rep"):
        check_complete(rules, ["report"], [])


@pytest.mark.parametrize(("name", "who", "onboarded"), PEOPLE, ids=[p[0] for p in PEOPLE])
async def test_every_entry_point_for_every_role(
    runtime: Runtime, name: str, who: frozenset[str], onboarded: bool
) -> None:
    runtime.settings.console.coordinators = ["leitstelle", "lea"]
    runtime.settings.console.admins = ["leitstelle"]
    reporter = Chat(runtime.core, "reporter")
    await reporter.onboard()
    await reporter.send("/report")
    await quick_report(reporter)
    await reporter.press("Anonym senden")
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None
    later = utcnow() + timedelta(hours=2)
    broadcast_id = await add_broadcast(runtime, send_at=later, expires_at=later)
    if onboarded:
        await add_user(runtime, name, role=next(iter(who)), region="koeln")
    person = Chat(runtime.core, name)
    walk = probes(report.id, report.reference, broadcast_id)
    assert set(walk) == set(ACCESS)  # every key of the table is walked

    for key, (how, what) in walk.items():
        before = len(await refusals(runtime))
        if how == "send":
            replies = await person.send(what)
        else:
            if how == "flow":
                await enter_flow(runtime, name, key)
            replies = await person.press_id(what)
        after = await refusals(runtime)
        # A sub-action is refused by its command's rule first (`/coordinators`).
        refused_by = key.split(" ")[0] if COORDINATOR not in who and " " in key else key
        refusal = runtime.content.text("de", ACCESS[refused_by].refusal)
        if expected_allowed(key, who):
            assert len(after) == before, f"{key} was refused for {name}"
            assert refusal not in shown(replies), key
            assert runtime.content.text("de", "core.not_allowed") not in shown(replies), key
        else:
            assert refusal in shown(replies), f"{key} was not refused for {name}"
            assert len(after) == before + 1, key
            assert after[-1].subject == refused_by
            if how == "flow":  # a dialogue someone may not use is closed, not left open
                async with runtime.sessions() as session:
                    user = await repos.get_user(session, "console", name)
                    assert user is not None
                assert await flow_of(runtime, name) == ""

    async with runtime.sessions() as session:
        fresh = await session.get(Report, report.id)
        broadcast = await session.get(Broadcast, broadcast_id)
    assert fresh is not None and broadcast is not None
    if COORDINATOR in who:
        assert fresh.status == "ack" and broadcast.status == "cancelled"
    else:  # refused attempts changed nothing
        assert fresh.status == "new" and broadcast.status == "scheduled"


async def test_a_coordinator_removed_mid_dialogue_cannot_finish_it(runtime: Runtime) -> None:
    runtime.settings.console.coordinators = ["leitstelle"]
    admin = Chat(runtime.core, "leitstelle")
    await admin.send("/coordinators add console mara")
    mara = Chat(runtime.core, "mara")
    await mara.send("/broadcast")
    await mara.send("Achtung, Planenschlitzer auf der A1")
    await admin.send("/coordinators remove console mara")
    await mara.send("/skip")
    assert "nur Koordinatorinnen" in mara.screen
    async with runtime.sessions() as session:
        user = await repos.get_user(session, "console", "mara")
        assert user is not None
        assert await session.scalar(select(func.count()).select_from(Broadcast)) == 0
    assert await flow_of(runtime, "mara") == ""


async def test_reports_reach_only_the_coordinator_destinations(runtime: Runtime) -> None:
    settings = runtime.settings
    settings.telegram.enabled, settings.telegram.coordinator_chat_id = True, -1001234
    settings.matrix.enabled, settings.matrix.coordinator_room = True, "!koord:example.org"
    settings.console.coordinators = ["leitstelle"]
    settings.console.enabled = True  # the terminal as a third transport of this deployment
    async with runtime.sessions() as session:
        found = await runtime.core.coordinator_destinations(session)
    destinations = {(d.transport, d.chat_id) for d in found}
    assert destinations == {
        ("console", "leitstelle"),
        ("telegram", "-1001234"),
        ("matrix", "!koord:example.org"),
    }
    labels = dict(runtime.content.options("de", "roles"))
    place = "Rastplatz Ohligser Heide, A3"  # quick_report's place: only coordinators read it
    for index, role in enumerate(ROLES):
        person = Chat(runtime.core, f"r_{role}")
        await person.onboard(role=labels[role])
        await person.send("/report")
        await quick_report(person)
        await person.press("Rückfragen erlaubt" if index % 2 else "Anonym senden")
    coordinator = Chat(runtime.core, "leitstelle")
    async with runtime.sessions() as session:
        reports = list((await session.scalars(select(Report).order_by(Report.id))).all())
    for report in reports:
        await coordinator.press_id(f"tri:{report.id}:police")

    async with runtime.sessions() as session:
        rows = list((await session.scalars(select(OutboxMessage))).all())
        users = {u.chat_id: u for u in (await session.scalars(select(User))).all()}
    assert len(reports) == len(ROLES)
    report_rows = [row for row in rows if row.kind == "report"]
    # Every report went to each destination once, and only there.
    assert sorted((r.transport, r.chat_id) for r in report_rows) == sorted(
        place for _ in reports for place in destinations
    )
    for row in rows:
        if (row.transport, row.chat_id) in destinations:
            assert row.kind == "report"
            continue
        # Anyone else got only a status notice of their own report, never its contents.
        assert row.kind == "notice", row.kind
        owner = users[row.chat_id]
        assert not owner.coordinator
        [own] = [r for r in reports if r.user_id == owner.id]
        assert own.contact_allowed
        text = row.payload[0]["text"]
        assert own.reference in text and place not in text
        assert all(r.reference not in text for r in reports if r is not own)


async def test_only_recipients_can_confirm_an_alert(runtime: Runtime) -> None:
    from bot.storage.alerts import status_counts

    broadcast_id = await add_broadcast(runtime)
    reader = await add_user(runtime, "reader", role="taxi_driver", region="koeln")
    await add_user(runtime, "outsider", role="taxi_driver", region="koeln")
    async with transaction(runtime.sessions) as session:
        await repos.queue_outbox(
            session,
            transport="console",
            chat_id="reader",
            user_id=reader,
            kind="alert",
            replies=[Reply("Achtung")],
            broadcast_id=broadcast_id,
        )
    forged = await Chat(runtime.core, "outsider").press_id(f"ack:{broadcast_id}")
    assert "gilt nicht mehr" in forged[0].text
    confirmed = await Chat(runtime.core, "reader").press_id(f"ack:{broadcast_id}")
    assert "gilt nicht mehr" not in confirmed[0].text
    async with runtime.sessions() as session:
        assert (await status_counts(session, broadcast_id))["acknowledged"] == 1
