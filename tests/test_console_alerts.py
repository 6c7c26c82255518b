"""The console's alert pages over plain HTTP: bad input gets a short plain answer and sends
nothing, the recipient count is the chat's, a form without its CSRF token changes nothing,
and a CAP download of an unknown alert is a plain 404. (The journey in a browser is
tests/test_console_alerts_browser.py.)"""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.storage.models import Broadcast, DialogueState, User
from tests.chat import Chat
from tests.console_fixtures import ConsoleSite, hidden, logged_in

GOOD = {
    "text_de": "Planenschlitzer auf der A1 zwischen Köln und Wuppertal.",
    "topic": "cargo_theft",
    "severity": "warning",
    "hours": "12",
    "when": "now",
}


async def stored(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Broadcast)) or 0)


async def post(client: aiohttp.ClientSession, site: ConsoleSite, **fields: Any) -> tuple[int, str]:
    async with client.get(site.url("/console/alerts/new")) as answer:
        html = await answer.text()
    data = {"csrf": hidden(html, "csrf"), "nonce": hidden(html, "nonce"), **fields}
    async with client.post(site.url("/console/alerts"), data=data) as answer:
        return answer.status, await answer.text()


async def test_bad_alert_forms_get_a_plain_answer_and_send_nothing(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    client = await logged_in(console_site)
    async with client:
        status, html = await post(client, console_site, **{**GOOD, "text_de": "  "},
                                  action="send")  # fmt: skip
        assert status == 400 and "Bitte den Text der Warnung auf 🇩🇪 Deutsch schreiben." in html
        status, html = await post(client, console_site, **{**GOOD, "text_en": "x" * 2001},
                                  action="send")  # fmt: skip
        assert status == 400 and "hat 2001 Zeichen; höchstens 2000 passen" in html
        status, html = await post(client, console_site, **{**GOOD, "hours": "zwölf"},
                                  action="send")  # fmt: skip
        assert status == 400 and 'id="problems"' in html
        status, html = await post(client, console_site, **{**GOOD, "when": "later"},
                                  action="send")  # fmt: skip
        assert status == 400 and "Zeitpunkt des Versands" in html
        status, html = await post(client, console_site,
                                  **{**GOOD, "when": "later", "at": "gestern"},
                                  action="send")  # fmt: skip
        assert status == 400 and 'id="problems"' in html
        status, html = await post(client, console_site, **{**GOOD, "topic": "<script>"},
                                  action="send")  # fmt: skip
        assert status == 400 and 'id="problems"' in html and "<script>" not in html
        assert "Traceback" not in html
        # No CSRF token: refused, nothing stored.
        async with client.post(console_site.url("/console/alerts"),
                               data={**GOOD, "action": "send"}) as answer:  # fmt: skip
            assert answer.status == 403
        async with client.get(console_site.url("/console/alerts/7/cap.xml")) as answer:
            assert answer.status == 404
    assert await stored(runtime) == 0


async def test_the_recipient_count_is_the_chats_and_a_preview_sends_nothing(
    console_site: ConsoleSite, runtime: Runtime
) -> None:
    for name, role, region in (("anna", "Lkw", "Köln"), ("ben", "Lkw", "Münster"),
                               ("cem", "Taxi", "Köln")):  # fmt: skip
        await Chat(runtime.core, name).onboard(role=role, region=region)
    client = await logged_in(console_site)
    async with client:
        url = console_site.url("/console/alerts/reach.json")
        async with client.get(url, params={"topic": "cargo_theft"}) as answer:
            assert (await answer.json())["count"] == 2  # the truck drivers (their topic)
        query = [("topic", "cargo_theft"), ("regions", "koeln")]
        async with client.get(url, params=query) as answer:
            assert (await answer.json())["text"] == "Empfängerinnen und Empfänger: 1"
        status, html = await post(client, console_site, **GOOD, action="preview")
        assert status == 200 and "Planenschlitzer auf der A1" in html and 'id="send"' in html
        assert await stored(runtime) == 0
        # The preview is not left open in the console's dialogue (it would come back
        # after the next action there).
        async with runtime.sessions() as session:
            flows = (await session.scalars(select(DialogueState.flow))).all()
        assert "bcp" not in flows
        status, _html = await post(client, console_site, **GOOD, action="send")
    assert await stored(runtime) == 1
    async with runtime.sessions() as session:
        alert = await session.get(Broadcast, 1)
        creator = await session.get(User, alert.created_by if alert else 0)
    assert alert is not None and alert.texts == {"de": GOOD["text_de"]}
    assert creator is not None and creator.platform_id == "leitstelle"
