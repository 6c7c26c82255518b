"""The Telegram transport end to end: unmodified python-telegram-bot over real HTTP against
the Bot API test server on 127.0.0.1, with the outbox worker running beside it."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.core.events import Choice, Reply
from bot.core.i18n import LANGUAGES
from bot.core.router import COORDINATOR, CommandSpec
from bot.runtime import Runtime, open_runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import ConversationEntry, OutboxMessage, Report, User
from bot.transports.telegram_render import inline_keyboard, message_texts, split_text
from tests.peers.botapi import BotApiServer, SentMessage
from tests.telegram_fixtures import COORDINATOR_ID, GROUP, USER, Harness
from tests.telegram_fixtures import TOKEN as TOKEN  # used by tests/test_cross_platform.py

OTHER = 4343


# --- the bot, the server and the fake human -------------------------------------------------


def text_of(message: SentMessage) -> str:
    return message.plain_text or ""


def button(message: SentMessage, label: str) -> str:
    """The callback data of the button whose label contains `label`."""
    for found in message.inline_buttons:
        if label.casefold() in str(found["text"]).casefold():
            return str(found["callback_data"])
    labels = [found["text"] for found in message.inline_buttons]
    raise AssertionError(f"no button {label!r} in {labels}")


async def with_buttons(server: BotApiServer, chat: int = USER, within: float = 5.0) -> SentMessage:
    """The next bot message in the chat that has inline buttons (the end of a reply)."""
    return await server.wait_for_message(chat, lambda m: bool(m.inline_buttons), within)


def turned(message: SentMessage, edits: int) -> bool:
    """Whether `message` was turned into the next question after its press ("✓ pick" on
    top, and the question's buttons; a tick alone goes below the text, without buttons)."""
    edited = len(message.history) > edits
    return edited and bool(message.inline_buttons) and text_of(message).startswith("✓ ")


async def press(
    server: BotApiServer, message: SentMessage, label: str, user: int = USER, within: float = 5.0
) -> SentMessage:
    """Press a button of `message`; return what shows the next step: the pressed message
    turned into the next question, or the next new message with buttons."""
    chat, edits = message.chat_id, len(message.history)
    start = len(server.messages_to(chat))
    server.press(user, message.message_id, button(message, label), chat_id=chat)
    await server.wait_until(
        lambda: (
            turned(message, edits)
            or any(m.inline_buttons for m in server.messages_to(chat)[start:])
        ),
        within,
    )
    if turned(message, edits):
        return message
    return await with_buttons(server, chat, within)


async def onboard(server: BotApiServer, user: int = USER) -> SentMessage:
    server.send_text(user, "/start")
    question = await with_buttons(server, user)
    for label in ("✅", "Lkw", "Köln"):
        question = await press(server, question, label, user)
    return question  # the menu


async def report_until_media(server: BotApiServer) -> SentMessage:
    """Onboard, start a report, share a location and skip to the photo question."""
    await onboard(server)
    server.send_text(USER, "/report")
    question = await press(server, await with_buttons(server), "Nein")  # not happening now
    words = await press(server, question, "Ladungsdiebstahl")
    server.press(USER, words.message_id, button(words, "Überspringen"))  # no words
    await location_question(server)
    server.send_location(USER, 51.1435, 7.0267)
    question = await with_buttons(server)
    assert "Foto" in text_of(question)
    return question


async def location_question(server: BotApiServer) -> SentMessage:
    """The place question: one message whose keyboard has the location button on top and
    the question's other choices (skip, back, cancel) as buttons below."""
    place = await server.wait_for_message(USER, lambda m: "keyboard" in (m.reply_markup or {}))
    rows = (place.reply_markup or {})["keyboard"]
    assert rows[0][0]["request_location"] is True
    assert any("Zurück" in found["text"] for row in rows[1:] for found in row)
    return place


def png(width: int, height: int, noise: bool = False) -> bytes:
    """A valid RGB PNG; with noise it does not compress."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixels = random.Random(7).randbytes if noise else (lambda n: b"\x10\x80\xf0" * (n // 3))
    rows = b"".join(b"\x00" + pixels(3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll a database condition the bot reaches asynchronously."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def queue_notice(runtime: Runtime, chat: int, text: str, user_id: int | None) -> int:
    """A message for someone else, as a handler queues it (a status notice)."""
    async with transaction(runtime.sessions) as session:
        row = await repos.queue_outbox(
            session,
            transport="telegram",
            chat_id=str(chat),
            user_id=user_id,
            kind="notice",
            replies=[Reply(text)],
        )
        return row.id


async def outbox_row(runtime: Runtime, row_id: int) -> OutboxMessage:
    async with runtime.sessions() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row


async def telegram_user(runtime: Runtime, user: int = USER) -> User:
    async with runtime.sessions() as session:
        found = await repos.get_user(session, "telegram", str(user))
        assert found is not None
        return found


# --- dialogues --------------------------------------------------------------------------------


async def test_onboarding_with_buttons_removes_each_pressed_keyboard(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    server.send_text(USER, "/start", language_code="de")
    consent = await with_buttons(server)
    hello = server.messages_to(USER)[0]
    assert "110" in text_of(hello) and hello.parse_mode == "HTML"
    rows = (consent.reply_markup or {})["inline_keyboard"]
    assert [len(row) for row in rows] == [2, 2, 2], "short labels: two buttons per row"
    assert "Sind Sie einverstanden?" in text_of(consent)  # German, as Telegram reported

    pressed: list[tuple[SentMessage, str]] = []
    question = consent
    for label, shown in (("✅", "✓ ✅ Einverstanden"), ("Lkw", "✓ 🚚 Lkw"), ("Köln", "✓ Köln")):
        pressed.append((question, shown))
        question = await press(server, question, label)

    menu = question
    assert text_of(menu).startswith("Danke, alles eingerichtet.\n\nMenü\n"), "one message"
    assert menu.entities[0]["type"] == "bold"
    for message, shown in pressed:
        assert message.inline_buttons == [] and message.edited, "a pressed keyboard is removed"
        assert shown in text_of(message), "the choice is shown in place"
    assert [answer.user_id for answer in server.callback_answers] == [USER] * 3
    user = await telegram_user(runtime)
    assert (user.role, user.region, user.chat_id) == ("truck_driver", "koeln", str(USER))
    assert user.consent_at is not None

    # A typed number picks a shown option, as in the terminal: 1 = report.
    server.send_text(USER, "1")
    assert "gerade jetzt" in text_of(await with_buttons(server))


async def test_report_with_location_and_photo_reaches_the_coordinator_group_and_triage(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    # The coordination group: chatter is ignored, commands are answered.
    server.send_text(OTHER, "Moin zusammen", chat_id=GROUP, chat_title="Koordination")
    server.send_text(COORDINATOR_ID, "/help", chat_id=GROUP)
    help_reply = await server.wait_for_message(GROUP)
    assert "Koordination" in text_of(help_reply)
    assert len(server.messages_to(GROUP)) == 1, "only the command was answered"

    picture = png(120, 80)
    question = await report_until_media(server)
    media = next(m for m in server.messages_to(USER) if "Foto" in text_of(m))
    assert media.history[0]["reply_markup"] == {"remove_keyboard": True}

    server.send_photo(USER, picture)
    question = await server.wait_for_message(USER, lambda m: "bitte prüfen" in text_of(m).lower())
    assert "1 Datei" in text_of(question)
    assert any(action.chat_id == USER for action in server.chat_actions), "typing… shown"
    thanks = await press(server, question, "Rückfragen erlaubt")
    found = re.search(r"SP-\d{4}-\d{6}", text_of(thanks))
    assert found is not None
    reference = found[0]

    # One message per report: the photo, the report as its caption with the map link, and
    # the triage buttons under it (a group takes 20 messages a minute).
    card = await server.wait_for_message(GROUP, lambda m: reference in text_of(m))
    assert card.photo is not None and card.file is not None and card.file.data == picture
    assert text_of(card).startswith(reference) and card.entities[0]["type"] == "bold"
    assert "openstreetmap.org/?mlat=51.14350&mlon=7.02670" in text_of(card)
    await asyncio.sleep(0.3)  # nothing else follows
    assert server.messages_to(GROUP) == [help_reply, card]
    labels = [label for _, label in runtime.content.options("de", "triage")]
    labels.append(runtime.content.text("de", "triage.reply"))  # contact allowed
    assert [found["text"] for found in card.inline_buttons] == labels

    # Someone in the group who is not a coordinator cannot take the buttons away.
    server.press(OTHER, card.message_id, button(card, "Polizei"), chat_id=GROUP)
    await server.wait_for_message(GROUP)
    assert card.inline_buttons
    server.press(COORDINATOR_ID, card.message_id, button(card, "Polizei"), chat_id=GROUP)
    changed = await server.wait_for_message(GROUP, lambda m: "jetzt" in text_of(m))
    assert reference in text_of(changed) and card.inline_buttons == []
    assert text_of(card).endswith("✓ " + labels[1]), "the caption shows what was picked"

    notice = await server.wait_for_message(USER, lambda m: "Neuigkeit" in text_of(m))
    assert reference in text_of(notice) and "Polizei" in text_of(notice)
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report).where(Report.reference == reference))
    assert report is not None and report.status == "police" and report.contact_allowed


async def test_photo_over_the_size_limit_is_refused_before_downloading(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    runtime.core.media.max_bytes = 20_000
    await bot.start()
    await report_until_media(server)
    downloads = len([call for call in server.calls if call.method == "getFile"])
    big = png(120, 80, noise=True)
    assert len(big) > 20_000
    server.send_photo(USER, big)
    hint = await server.wait_for_message(USER, lambda m: "zu groß" in text_of(m))
    assert "20 MB" in text_of(hint)
    assert "Foto" in text_of(hint) and hint.inline_buttons  # the question again, at once
    assert len([call for call in server.calls if call.method == "getFile"]) == downloads
    server.send_photo(USER, png(20, 20))
    await server.wait_for_message(USER, lambda m: "bitte prüfen" in text_of(m).lower())


async def test_tips_and_the_silent_alarm_guide_in_one_message(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start(limits=None)  # production limits: one message per second and chat
    guide = runtime.content.topic("de", "silent_alarm_taxi")
    title = f"{guide.title} (1/{len(guide.cards)})"
    server.send_text(USER, "/alarm")
    card = await with_buttons(server)
    assert server.messages_to(USER) == [card], "a fresh /alarm: the guide in one message"
    assert text_of(card) == f"{title}\n{guide.cards[0]}"
    assert card.entities[0]["type"] == "bold"

    # "Next" turns the page in the same message: nothing new to scroll past.
    server.press(USER, card.message_id, button(card, runtime.content.text("de", "tips.next")))
    await server.wait_until(lambda: text_of(card).startswith(f"{guide.title} (2/"))
    assert text_of(card) == f"{guide.title} (2/{len(guide.cards)})\n{guide.cards[1]}"
    assert button(card, runtime.content.text("de", "tips.previous"))
    assert server.messages_to(USER) == [card]

    server.send_text(USER, "/start alarm")  # the deep link
    again = await with_buttons(server)
    assert text_of(again) == f"{title}\n{guide.cards[0]}"

    server.send_text(USER, "/tips")
    topics = await with_buttons(server)
    assert text_of(topics).startswith(runtime.content.text("de", "tips.title"))
    first = runtime.content.topic("de", runtime.content.topic_ids[0])
    server.press(USER, topics.message_id, button(topics, first.title))
    await server.wait_until(lambda: text_of(topics).startswith(first.title))
    assert server.messages_to(USER) == [card, again, topics]


async def test_unsupported_content_is_answered(bot: Harness, server: BotApiServer) -> None:
    await bot.start()
    server.send_sticker(USER)
    answer = await server.wait_for_message(USER)
    assert "kann ich hier nicht verwenden" in text_of(answer) and answer.inline_buttons
    server.send_contact(USER)
    answer = await server.wait_for_message(USER)
    assert "kann ich hier nicht verwenden" in text_of(answer)
    assert len(server.messages_to(USER)) == 2, "one message per answer"


async def test_in_groups_only_commands_and_replies_to_the_bot_are_answered(
    bot: Harness, server: BotApiServer
) -> None:
    await bot.start()
    server.send_text(OTHER, "Hallo zusammen", chat_id=GROUP, chat_title="Taxi Nord")
    server.send_photo(OTHER, png(10, 10), chat_id=GROUP)
    server.send_text(OTHER, "/help@anderer_bot", chat_id=GROUP)
    command = server.send_text(OTHER, "/help@sicherheitsbot", chat_id=GROUP)
    answer = await server.wait_for_message(GROUP)
    assert answer.reply_to_message_id == command["message"]["message_id"]
    reply = server.send_text(OTHER, "danke", chat_id=GROUP, reply_to_message_id=answer.message_id)
    second = await server.wait_for_message(GROUP)
    assert second.reply_to_message_id == reply["message"]["message_id"]
    assert server.pending_updates() == []
    answered = {m.reply_to_message_id for m in server.messages_to(GROUP)}
    assert answered <= {command["message"]["message_id"], reply["message"]["message_id"], None}


async def test_a_failed_update_is_logged_with_its_id_and_the_bot_goes_on(
    bot: Harness, server: BotApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot.transports.telegram")
    await bot.start()
    server.fail_next("sendMessage", status=400)
    failed = server.send_text(USER, "/help")["update_id"]

    async def logged() -> bool:
        return any(f"update {failed} failed" in r.getMessage() for r in caplog.records)

    await eventually(logged)
    server.fail_next("sendMessage", status=502)  # a 5xx in a direct reply is retried
    server.send_text(USER, "/help")
    reply = await with_buttons(server)
    assert server.messages_to(USER) == [reply]


# --- delivery ---------------------------------------------------------------------------------


async def test_a_user_who_blocked_the_bot_is_marked_inactive(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    server.send_text(USER, "/help")
    await with_buttons(server)
    server.block(USER)
    user = await telegram_user(runtime)
    row_id = await queue_notice(runtime, USER, "Neuigkeit zu Ihrer Meldung", user.id)

    async def inactive() -> bool:
        return not (await telegram_user(runtime)).active

    await eventually(inactive)
    assert (await outbox_row(runtime, row_id)).status == "failed"
    refused = [c for c in server.calls if c.method == "sendMessage" and c.status == 403]
    assert len(refused) == 1


async def test_flood_control_is_honoured_without_duplicates(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start(limits=None)
    # A direct reply waits out the 429 and is sent once.
    server.retry_after_next(1)
    started = time.monotonic()
    server.send_text(USER, "/help")
    reply = await with_buttons(server)
    assert time.monotonic() - started >= 0.9
    assert server.messages_to(USER) == [reply]

    # A queued message: the worker pauses, then sends it once.
    server.add_user(OTHER)
    server.retry_after_next(1)
    started = time.monotonic()
    row_id = await queue_notice(runtime, OTHER, "Hinweis nach der Pause", None)
    notice = await server.wait_for_message(OTHER, timeout=6)
    assert time.monotonic() - started >= 0.9
    assert text_of(notice) == "Hinweis nach der Pause"

    async def sent() -> bool:
        return (await outbox_row(runtime, row_id)).status == "sent"

    await eventually(sent)
    assert server.messages_to(OTHER) == [notice], "no duplicate"
    assert len([c for c in server.calls if c.status == 429]) == 2


async def test_long_texts_are_split_and_everything_is_escaped(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    server.add_user(USER)
    paragraph = "Absatz <b>nicht fett</b> & weiter. " * 40  # ~1400 characters
    text = "\n\n".join([paragraph.strip()] * 5)
    async with transaction(runtime.sessions) as session:
        await repos.queue_outbox(
            session,
            transport="telegram",
            chat_id=str(USER),
            user_id=None,
            kind="notice",
            replies=[Reply(text, title="<Hinweis>", choices=[Choice("/menu", "📋 Menü")])],
        )
    last = await with_buttons(server)
    messages = server.messages_to(USER)
    assert len(messages) == 3 and messages[-1] is last
    assert all(len(text_of(m)) <= 4096 for m in messages)
    assert text_of(messages[0]).startswith("<Hinweis>\nAbsatz <b>nicht fett</b> & weiter.")
    assert messages[0].entities == [{"type": "bold", "offset": 0, "length": 9}]
    assert "\n\n".join(text_of(m) for m in messages) == f"<Hinweis>\n{text}"


def test_rendering_splits_at_paragraphs_and_lays_out_buttons() -> None:
    assert split_text("a" * 10 + "\n\n" + "b" * 10, limit=15) == ["a" * 10, "b" * 10]
    assert split_text("x" * 30, limit=12) == ["x" * 12, "x" * 12, "x" * 6]
    assert message_texts("T<1>", "a & b") == ["<b>T&lt;1&gt;</b>\na &amp; b"]
    short = inline_keyboard([Choice(str(i), f"Knopf {i}") for i in range(3)])
    long = inline_keyboard([Choice("a", "Ein ziemlich langer Knopf"), Choice("b", "Kurz")])
    assert short is not None and [len(row) for row in short.inline_keyboard] == [2, 1]
    assert long is not None and [len(row) for row in long.inline_keyboard] == [1, 1]


# --- set-up: commands, webhook, restart ---------------------------------------------------------


async def test_command_menus_per_language_and_for_coordinators(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    async def probe(context: Any) -> None:
        return None

    core = runtime.core
    core.commands["probe"] = CommandSpec("probe", probe, roles=frozenset({COORDINATOR}))
    await bot.start()
    listed = [spec for spec in core.commands.values() if spec.listed]
    public = [spec.name for spec in listed if spec.roles is None]
    staff = [spec.name for spec in listed if spec.roles and COORDINATOR in spec.roles]
    assert "report" in public and "probe" in staff and "triage" not in staff

    for language in LANGUAGES:
        for name in [*public, *staff]:
            key = f"commands.{name}"
            assert name == "probe" or key in runtime.content.messages[language], key
        stored = server.commands("default", language)
        assert [command["command"] for command in stored] == public
        for command in stored:
            key = f"commands.{command['command']}"
            assert command["description"] == runtime.content.text(language, key)
        for chat in (COORDINATOR_ID, GROUP):
            scoped = server.commands({"type": "chat", "chat_id": chat}, language)
            assert [command["command"] for command in scoped] == public + staff
    assert server.commands("default") == server.commands("default", "de")
    scoped = server.commands({"type": "chat", "chat_id": COORDINATOR_ID}, "en")
    assert {"command": "probe", "description": "/probe"} in scoped


async def test_webhook_mode_receives_pushes_and_rejects_a_wrong_secret(
    bot: Harness, server: BotApiServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    await bot.start(
        mode="webhook",
        webhook_url=url,
        webhook_listen="127.0.0.1",
        webhook_port=port,
        webhook_secret=SecretStr("richtiges-geheimnis"),
    )
    assert server.webhook_info()["url"] == url
    server.send_text(USER, "/help")
    reply = await with_buttons(server)
    assert "/report" in text_of(reply)

    forged = {
        "update_id": 1,
        "message": {
            "message_id": 99,
            "date": int(time.time()),
            "chat": {"id": USER, "type": "private"},
            "from": {"id": USER, "is_bot": False, "first_name": "Mallory"},
            "text": "/alarm",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    async with aiohttp.ClientSession() as http:
        wrong = {"X-Telegram-Bot-Api-Secret-Token": "falsch"}
        async with http.post(url, json=forged, headers=wrong) as response:
            assert response.status == 403
        async with http.post(url, json=forged) as response:
            assert response.status == 403
    server.send_text(USER, "/cancel")
    await server.wait_for_message(USER)
    assert len(server.messages_to(USER)) == 2, "only /help and /cancel were answered"
    assert server.pending_updates() == []


async def test_a_restart_mid_dialogue_continues_at_the_same_step_exactly_once(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    server.send_text(USER, "/start")
    language = consent = await with_buttons(server)
    await bot.stop()

    # Pressed while the bot is down; a new process on the same database picks it up.
    server.press(USER, consent.message_id, button(consent, "✅"))
    async with open_runtime(runtime.settings) as second:
        await bot.start(runtime=second)
        role = await with_buttons(server)
        assert text_of(role) == runtime.content.text("de", "onboarding.role")
        region = await press(server, role, "Lkw")
        assert region is role, "the next question takes the pressed one's place"
        assert text_of(region) == "✓ 🚚 Lkw-Fahrer/in\n\n" + runtime.content.text(
            "de", "onboarding.region"
        )
        await bot.stop()

    texts = [text_of(m) for m in server.messages_to(USER)]
    for question in (consent, role, region):
        assert texts.count(text_of(question)) == 1, "no update was handled twice"
    assert consent.inline_buttons == [] and language is consent
    assert server.pending_updates() == []
    user = await telegram_user(runtime)
    async with runtime.sessions() as session:
        inbound = await session.scalar(
            select(func.count())
            .select_from(ConversationEntry)
            .where(ConversationEntry.user_id == user.id, ConversationEntry.direction == "in")
        )
    assert inbound == 3  # /start, consent, role
