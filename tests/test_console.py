"""The coordinator console over real HTTP (the browser journey is tests/test_console_browser.py):
login links, sessions and CSRF, triage and replies through the same code as the chat,
the report's PDF, and /metrics parsed by prometheus-client."""

from __future__ import annotations

import csv
import io
import re
from ipaddress import ip_network
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.core import forms
from bot.runtime import Runtime
from bot.storage import console, privacy
from bot.storage.models import AuditEntry, ConversationEntry, DialogueState, Report, User
from tests.chat import Chat
from tests.console_fixtures import COORDINATOR, ConsoleSite, hidden, logged_in, report_with_photo
from tests.test_report import outbox_for, quick_report


async def report_row(runtime: Runtime, reference: str) -> Report:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Report).where(Report.reference == reference))
    assert found is not None
    return found


async def test_a_link_logs_a_coordinator_in_once_and_only_with_the_button(
    console_site: ConsoleSite,
) -> None:
    link = console_site.link("console:leitstelle")
    token = link.rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as client:
        # Opening the link (a chat's link preview does the same) uses nothing up.
        for _ in range(2):
            async with client.get(link) as answer:
                assert answer.status == 200 and 'id="login"' in await answer.text()
        async with client.post(console_site.url("/console/login"), data={"token": token},
                               allow_redirects=False) as answer:  # fmt: skip
            assert answer.status == 303 and answer.headers["Location"] == "/console/"
            cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback; https public_url sets it
    login = console_site.url("/console/login")
    async with (
        aiohttp.ClientSession() as client,
        client.post(login, data={"token": token}) as again,
    ):
        assert again.status == 403  # the link a second time: refused
        assert "nicht" in await again.text()


async def test_a_plain_users_link_and_a_reused_link_are_refused_and_rate_limited(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    driver = Chat(runtime.core, "driver")
    await driver.onboard()
    plain = console_site.link("console:driver").rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as client:
        async with client.post(console_site.url("/console/login"), data={"token": plain}) as answer:
            assert answer.status == 403 and "sb_console" not in answer.cookies
        for attempt in range(9):  # the plain user's one and nine made-up ones: ten refused
            async with client.post(console_site.url("/console/login"),
                                   data={"token": f"guess{attempt}"}) as answer:  # fmt: skip
                assert answer.status == 403
        good = console_site.link("console:leitstelle").rsplit("/", 1)[1]
        async with client.post(console_site.url("/console/login"), data={"token": good}) as answer:
            assert answer.status == 429  # even a good link, from here, for a while
    async with runtime.sessions() as session:
        refused = (await session.scalars(select(AuditEntry.action))).all()
    assert "refused" in refused and "console_login" not in refused


async def test_a_post_without_the_csrf_token_changes_nothing(
    console_site: ConsoleSite, runtime: Runtime, tmp_path: Path
) -> None:
    reference = await report_with_photo(runtime, tmp_path)
    client = await logged_in(console_site)
    async with client:
        path = f"/console/reports/{reference}/status"
        for data in ({"status": "police"}, {"status": "police", "csrf": "forged"}):
            async with client.post(console_site.url(path), data=data) as answer:
                assert answer.status == 403
    assert (await report_row(runtime, reference)).status == "new"
    assert len(await outbox_for(runtime, "driver")) == 0  # the reporter heard nothing


async def test_triage_in_the_console_is_the_chats_triage(
    console_site: ConsoleSite, runtime: Runtime, tmp_path: Path
) -> None:
    reference = await report_with_photo(runtime, tmp_path)
    client = await logged_in(console_site)
    async with client:
        async with client.get(console_site.url(f"/console/reports/{reference}")) as answer:
            page = await answer.text()
        form = {"csrf": hidden(page, "csrf"), "nonce": hidden(page, "nonce")}
        status = console_site.url(f"/console/reports/{reference}/status")
        async with client.post(status, data={**form, "status": "police"}) as answer:
            assert answer.status == 200
            assert "an die Polizei gegeben" in await answer.text()  # the bot's answer
        # The same form sent again (a double click): handled once.
        async with client.post(status, data={**form, "status": "police"}) as answer:
            assert answer.status == 200
        async with client.get(console_site.url(f"/console/reports/{reference}")) as answer:
            page = await answer.text()
        reply = console_site.url(f"/console/reports/{reference}/reply")
        text = "Danke! Bitte rufen Sie die Wache an."
        async with client.post(reply, data={"csrf": hidden(page, "csrf"),
                                            "nonce": hidden(page, "nonce") + "-r",
                                            "text": text}) as answer:  # fmt: skip
            assert "Nachricht" in await answer.text()
        closing = {"csrf": hidden(page, "csrf"), "nonce": hidden(page, "nonce"),
                   "status": "closed", "note": "An PI Köln übergeben"}  # fmt: skip
        async with client.post(status, data=closing) as answer:
            assert answer.status == 200
    found = await report_row(runtime, reference)
    assert found.status == "closed" and found.status_note == "An PI Köln übergeben"
    # The reporter's chat got what the chat's triage sends: each status, and the message.
    assert await reporter_reads(runtime) == [
        f"Neuigkeit zu Ihrer Meldung {reference}: an die Polizei gegeben.",
        text,
        f"Neuigkeit zu Ihrer Meldung {reference}: abgeschlossen.",
    ]
    async with runtime.sessions() as session:
        audit = (
            await session.execute(
                select(AuditEntry.action, AuditEntry.actor_id, AuditEntry.details)
                .where(AuditEntry.subject == reference)
                .order_by(AuditEntry.id)
            )
        ).all()
        coordinator_id = await session.scalar(
            select(DialogueState.user_id).where(DialogueState.chat_id == "web")
        )
    actions = [(action, details.get("status")) for action, _actor, details in audit]
    assert actions == [
        ("report_submitted", None),
        ("report_status", "police"),
        ("report_reply", None),
        ("report_status", "closed"),
    ]
    assert {actor for action, actor, _ in audit if action != "report_submitted"} == {coordinator_id}


async def reporter_reads(runtime: Runtime, user: str = "driver") -> list[str]:
    """What the reporter's terminal shows of the messages waiting for them."""
    shown: list[str] = []
    reporter = Chat(runtime.core, user)
    reporter.console.write = shown.append
    await reporter.console.show_waiting()
    return [
        line.split("==\n", 1)[-1].split("\n[1]", 1)[0]
        for line in shown
        if line and line != "📨 ---"
    ]


async def test_a_console_action_leaves_the_coordinators_chat_dialogue_alone(
    console_site: ConsoleSite, runtime: Runtime, tmp_path: Path
) -> None:
    reference = await report_with_photo(runtime, tmp_path)
    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.send("/broadcast")  # an alert half written in the chat
    await coordinator.send("Planenschlitzer auf der A3")
    before = await dialogues(runtime)
    assert before["leitstelle"][0] == "bc"
    client = await logged_in(console_site)
    async with client:
        async with client.get(console_site.url(f"/console/reports/{reference}")) as answer:
            page = await answer.text()
        data = {"csrf": hidden(page, "csrf"), "nonce": hidden(page, "nonce"), "status": "ack"}
        async with client.post(console_site.url(f"/console/reports/{reference}/status"),
                               data=data) as answer:  # fmt: skip
            assert answer.status == 200
    after = await dialogues(runtime)
    assert after["leitstelle"] == before["leitstelle"]  # the same question still open
    assert after["web"] == ("", None)
    async with runtime.sessions() as session:  # its private chat is still its own
        own = await session.scalar(select(User.chat_id).where(User.platform_id == "leitstelle"))
    assert own == "leitstelle"
    assert (await report_row(runtime, reference)).status == "ack"


async def dialogues(runtime: Runtime) -> dict[str, tuple[str, object]]:
    """(flow, open step) per chat."""
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(DialogueState))).all()
    return {row.chat_id: (row.flow, row.data.get("step")) for row in rows}


async def test_someone_who_stops_coordinating_is_let_out_at_the_next_request(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    client = await logged_in(console_site)
    async with client:
        async with client.get(console_site.url("/console/")) as answer:
            assert answer.status == 200
        runtime.settings.console.coordinators = []
        async with client.get(console_site.url("/console/")) as answer:
            assert answer.status == 403
            assert "abgemeldet" in await answer.text()
        runtime.settings.console.coordinators = ["leitstelle"]
        async with client.get(console_site.url("/console/")) as answer:
            assert answer.status == 403  # the session ended with the right; a new link


async def test_every_answer_carries_the_security_headers(console_site: ConsoleSite) -> None:
    async with aiohttp.ClientSession() as client:
        for path in ("/console/", "/console/login/whatever", "/healthz"):
            async with client.get(console_site.url(path)) as answer:
                policy = answer.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "unsafe-inline" not in policy
                assert "frame-ancestors 'none'" in policy
                assert answer.headers["Referrer-Policy"] == "no-referrer"


async def test_the_pdf_and_the_print_view_of_a_report(
    console_site: ConsoleSite, runtime: Runtime, tmp_path: Path
) -> None:
    reference = await report_with_photo(runtime, tmp_path)
    client = await logged_in(console_site)
    async with client:
        async with client.get(console_site.url(f"/console/reports/{reference}/pdf")) as answer:
            assert answer.status == 200 and answer.content_type == "application/pdf"
            body = await answer.read()
        async with client.get(console_site.url(f"/console/reports/{reference}/print")) as answer:
            printed = await answer.text()
    assert body.startswith(b"%PDF-") and b"/Subtype /Image" in body  # the photo is in it
    assert reference in printed and "Zwei Männer schlitzen" in printed


async def test_a_form_sent_whole_ends_in_the_same_on_submit(runtime: Runtime) -> None:
    """The engine's whole submission: each field through the chat's parsers, then the
    form's own `on_submit`; a field that does not fit is told and nothing is submitted."""
    submitted: list[forms.Answers] = []

    async def remember(_context: object, answers: forms.Answers) -> None:
        submitted.append(answers)

    form = forms.Form(
        name="wholetest",
        texts="triage",
        review=False,
        steps=(
            forms.Step("count", forms.Input.NUMBER, "triage.q.note", minimum=1, maximum=5),
            forms.Step("note", forms.Input.TEXT, "triage.q.note", optional=True),
        ),
        on_submit=remember,  # type: ignore[arg-type]
    )
    from dataclasses import replace

    from bot.core.events import Event, EventKind

    for fields, expected in (({"count": "9"}, []), ({"count": "3"}, [{"count": 3, "note": None}])):
        event = Event("console", "leitstelle", "leitstelle", EventKind.COMMAND, command="x",
                      door="web", fields=fields)  # fmt: skip

        async def work(context: object, event: Event = event) -> None:
            context.event = replace(event)  # type: ignore[attr-defined]
            await forms.start(context, form)  # type: ignore[arg-type]

        replies = await runtime.core.pipeline.system("console", "leitstelle", "web", work)
        del replies
        assert submitted == expected


async def test_metrics_are_prometheus_text_and_move_when_a_report_is_made(
    console_site: ConsoleSite, runtime: Runtime, tmp_path: Path
) -> None:
    async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = console_site.url("/metrics")
        async with aiohttp.ClientSession() as client, client.get(url) as answer:
            assert answer.status == 200
            assert answer.content_type == "text/plain"
            text = await answer.text()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    before = await scrape()
    await report_with_photo(runtime, tmp_path)
    after = await scrape()
    updates = ("sicherheitsbot_updates_handled_total", (("transport", "console"),))
    latency = ("sicherheitsbot_update_handling_seconds_count", (("transport", "console"),))
    assert after[updates] - before.get(updates, 0.0) >= 10  # onboarding and the report
    assert after[latency] - before.get(latency, 0.0) == after[updates] - before.get(updates, 0.0)
    assert after[("sicherheitsbot_reports", (("status", "new"),))] == 1
    pending = ("sicherheitsbot_outbox_messages", (("status", "pending"),))
    assert after[pending] >= 1  # the report's copy for the coordinators waits
    assert ("sicherheitsbot_scheduler_leader", ()) in after
    assert ("sicherheitsbot_platform_flood_waits_total", ()) in after


async def test_an_expired_link_is_refused_and_the_purge_takes_expired_links_and_sessions(
    runtime: Runtime,
) -> None:
    from datetime import timedelta

    from bot.routine import purge
    from bot.storage import console, repos
    from bot.storage.db import transaction
    from bot.storage.models import ConsoleLogin, ConsoleSession, utcnow

    now = utcnow()
    async with transaction(runtime.sessions) as session:
        user = await repos.get_or_create_user(session, "console", "leitstelle", "", "de")
        old = await console.create_login(session, user.id, now - timedelta(minutes=11))
        fresh = await console.create_login(session, user.id, now)
        stale, _ = await console.open_session(session, user.id, now - timedelta(hours=13), 12)
        live, _ = await console.open_session(session, user.id, now, 12)
    async with transaction(runtime.sessions) as session:
        assert await console.use_login(session, old, now) is None  # 11 minutes: too late
        assert await console.use_login(session, fresh, now) == user.id
        assert await console.session_for(session, stale, now) is None
        assert await console.session_for(session, live, now) is not None
    await purge(runtime, now=now + timedelta(minutes=11))
    async with runtime.sessions() as session:
        links = (await session.scalars(select(ConsoleLogin))).all()
        sessions = (await session.scalars(select(ConsoleSession))).all()
    assert links == [] and len(sessions) == 1  # the live session stays until it ends


async def test_sicherheitsbot_run_serves_the_console_and_metrics(tmp_path: Path) -> None:
    import asyncio
    import signal
    import subprocess
    import sys

    from tests.test_run import environment, free_port, healthy

    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[bot]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\nenabled = true\n',
        encoding="utf-8",
    )
    bot = [sys.executable, "-m", "bot.cli"]
    running = await asyncio.create_subprocess_exec(
        *bot, "run", "--config", str(config), env=environment(), cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await healthy(port, running)
        made = await asyncio.to_thread(
            subprocess.run, [*bot, "console-link", "--config", str(config), "console:leitstelle"],
            capture_output=True, text=True, env=environment(), timeout=120, check=False,
        )  # fmt: skip
        link = made.stdout.strip()
        assert link.startswith(f"http://127.0.0.1:{port}/console/login/"), made.stderr
        base = f"http://127.0.0.1:{port}"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as client:
            token = link.rsplit("/", 1)[1]
            async with client.post(f"{base}/console/login", data={"token": token}) as answer:
                assert answer.status == 200 and 'id="nav-inbox"' in await answer.text()
            for _ in range(600):  # until the scheduler runs here (it starts after the web)
                async with client.get(f"{base}/metrics") as answer:
                    assert answer.status == 200
                    if "sicherheitsbot_scheduler_leader 1.0" in await answer.text():
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the scheduler leader never showed in /metrics")
    finally:
        running.send_signal(signal.SIGTERM)
        _, error = await asyncio.wait_for(running.communicate(), 60)
    assert running.returncode == 0, error.decode()[-2000:]


def test_the_content_check_covers_the_consoles_texts(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from bot.core.i18n import DEFAULT_CONTENT_DIR

    copy = tmp_path / "content"
    shutil.copytree(DEFAULT_CONTENT_DIR, copy)
    for lang in ("de", "en", "pl"):  # gone in every language: complete, but not for the console
        path = copy / lang / "console.yaml"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(line for line in lines if "  map_hint:" not in line), "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "content", "check", "--dir", str(copy)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "de: console.map_hint is used by the web console but missing" in done.stderr


async def test_behind_tls_the_session_cookie_is_secure(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    from bot.storage import console, repos
    from bot.storage.db import transaction
    from bot.storage.models import utcnow

    runtime.settings.web.public_url = "https://bot.example.org"
    assert runtime.settings.web.login_link("x") == "https://bot.example.org/console/login/x"
    async with transaction(runtime.sessions) as session:
        user = await repos.get_or_create_user(session, "console", "leitstelle", "", "de")
        token = await console.create_login(session, user.id, utcnow())
    login = console_site.url("/console/login")
    async with (
        aiohttp.ClientSession() as client,
        client.post(login, data={"token": token}, allow_redirects=False) as answer,
    ):
        assert answer.status == 303
        assert "Secure" in answer.headers["Set-Cookie"]


async def test_console_in_the_chat_gives_a_link_the_conversation_log_does_not_keep(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    coordinator = Chat(runtime.core, "leitstelle")
    await coordinator.onboard()
    await coordinator.send("/menu")
    await coordinator.press("Web-Konsole")  # the menu's button sends /console
    link = re.search(r"http://127\.0\.0\.1:\d+/console/login/(\S+)", coordinator.screen)
    assert link is not None, coordinator.screen
    token = link.group(1)
    login = console_site.url("/console/login")
    async with (
        aiohttp.ClientSession() as client,
        client.post(login, data={"token": token}, allow_redirects=False) as answer,
    ):
        assert answer.status == 303  # the link from the chat logs in
    async with runtime.sessions() as session:
        logged = (await session.scalars(select(ConversationEntry.text))).all()
    assert any(text == "/console" for text in logged)  # the command itself is kept
    assert not any(token in (text or "") for text in logged), logged


async def test_a_csv_export_runs_no_formula_in_a_spreadsheet(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    planted = '=HYPERLINK("http://127.0.0.1/x","Klick")'
    async with runtime.sessions() as session:
        session.add(AuditEntry(action="coordinator_added", subject=planted))
        await session.commit()
    client = await logged_in(console_site)  # console:leitstelle, an admin
    async with client, client.get(console_site.url("/console/admin/audit.csv")) as answer:
        assert answer.status == 200
        body = (await answer.read()).decode("utf-8-sig")
    subjects = [row["subject"] for row in csv.DictReader(io.StringIO(body))]
    assert "'" + planted in subjects  # shown as the text it is
    assert planted not in subjects


async def test_behind_a_trusted_proxy_refusals_count_per_client_not_per_proxy(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    runtime.settings.web.trusted_proxies = [ip_network("127.0.0.1")]  # nginx on this host
    login = console_site.url("/console/login")

    async def status(forwarded: str, token: str) -> int:
        headers = {"X-Forwarded-For": forwarded}
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                login, data={"token": token}, headers=headers, allow_redirects=False
            ) as answer,
        ):
            return answer.status

    for attempt in range(10):  # someone guessing links, through the proxy
        assert await status("203.0.113.7", f"guess{attempt}") == 403
    assert await status("203.0.113.7", "guess") == 429
    # Putting another address in front of their own does not get them out.
    assert await status("198.51.100.1, 203.0.113.7", "guess") == 429
    # Everyone else behind the same proxy still logs in.
    good = console_site.link(COORDINATOR).rsplit("/", 1)[1]
    assert await status("198.51.100.1", good) == 303
    # Without trusted proxies the header is believed from no one: the peer is the client.
    runtime.settings.web.trusted_proxies = []
    for attempt in range(10):
        assert await status(f"192.0.2.{attempt}", f"other{attempt}") == 403
    assert await status("192.0.2.200", "guess") == 429


async def test_a_coordinators_help_names_the_desk_and_a_drivers_does_not(
    runtime: Runtime,
) -> None:
    coordinator, driver = Chat(runtime.core, "leitstelle"), Chat(runtime.core, "driver")
    for person in (coordinator, driver):
        await person.onboard()
        await person.send("/help")
    for command in ("/reports", "/broadcast", "/broadcasts", "/console"):
        assert command in coordinator.screen
        assert command not in driver.screen
    # Without the console in this deployment its button would lead nowhere: none.
    runtime.settings.web.enabled = False
    await coordinator.send("/menu")
    assert "📥 Offene Meldungen" in coordinator.labels
    assert not any("Web-Konsole" in label for label in coordinator.labels)


async def test_a_report_stays_in_the_region_it_was_sent_from(runtime: Runtime) -> None:
    """The inbox's region filter finds a report where it was sent from, after its reporter
    moved on and after they erased themselves keeping their reports."""
    driver = Chat(runtime.core, "driver")
    await driver.onboard(region="Köln")
    await driver.send("/report")
    await quick_report(driver)
    await driver.press("Anonym senden")

    async def found(region: str) -> list[str]:
        async with runtime.sessions() as session:
            rows = await console.reports(session, 0, console.Filters(region=region))
        return [row.region for row in rows]

    await driver.send("/settings")
    await driver.press("Region")
    await driver.press("Münster")
    assert (await found("koeln"), await found("muenster")) == (["koeln"], [])
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "driver"))
        assert user is not None and user.region == "muenster"  # the move happened
        await privacy.erase_user(session, user, "anonymise")
        await session.commit()
    assert await found("koeln") == ["koeln"]
