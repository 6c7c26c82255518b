"""The Bot API test server works with an unmodified python-telegram-bot Application."""

from __future__ import annotations

import asyncio
import datetime as dtm
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.peers.botapi import BotApiServer, FloodLimits, SentMessage

TOKEN = "123456:TEST"
USER = 4242
OTHER_USER = 4343
GROUP = -1001234567890
SECRET = "richtiges-geheimnis"

App = Application[Any, Any, Any, Any, Any, Any]
Context = ContextTypes.DEFAULT_TYPE


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    """A fresh server with one bot per test."""
    peer = BotApiServer(webhook_retry_delay=0.02)
    peer.add_bot(TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


def build_app(server: BotApiServer, *handlers: BaseHandler[Any, Any, Any]) -> App:
    """A PTB Application pointed at the test server."""
    builder = ApplicationBuilder().token(TOKEN)
    app = builder.base_url(server.base_url).base_file_url(server.base_file_url).build()
    app.add_handlers(handlers)
    return app


@asynccontextmanager
async def polling(
    server: BotApiServer, *handlers: BaseHandler[Any, Any, Any]
) -> AsyncIterator[App]:
    """Run an Application with long polling; always shut it down."""
    app = build_app(server, *handlers)
    await app.initialize()
    try:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=5)
        yield app
    finally:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()


@asynccontextmanager
async def bot_for(server: BotApiServer, token: str = TOKEN) -> AsyncIterator[Bot]:
    """A bare initialised Bot."""
    async with Bot(token, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
        yield bot


def message_of(update: Update) -> Message:
    """The update's message (handlers here only get messages)."""
    assert update.effective_message is not None
    return update.effective_message


def seconds(value: int | dtm.timedelta) -> float:
    """RetryAfter.retry_after as seconds, whatever PTB's timedelta setting."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def png(width: int, height: int) -> bytes:
    """A tiny valid RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def api(server: BotApiServer, method: str, **kwargs: Any) -> tuple[int, Any]:
    """A raw Bot API call (form, or JSON with ``json=``); returns (status, body)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.base_url}{TOKEN}/{method}", **kwargs) as response,
    ):
        return response.status, await response.json()


async def echo(update: Update, context: Context) -> None:
    """Reply with the text."""
    await message_of(update).reply_text(f"echo: {message_of(update).text}")


# --- long polling -------------------------------------------------------------------------


async def test_long_polling_delivers_text_and_the_reply_arrives(server: BotApiServer) -> None:
    async with polling(server, MessageHandler(filters.TEXT & ~filters.COMMAND, echo)) as app:
        assert app.bot.username == "sicherheitsbot"
        server.send_text(USER, "Hallo Welt", first_name="Erika")
        reply = await server.wait_for_message(USER)

    assert reply.text == "echo: Hallo Welt"
    assert reply.method == "sendMessage"
    assert reply.message["from"]["is_bot"] is True
    assert reply.message["chat"] == {"id": USER, "type": "private", "first_name": "Erika"}
    assert abs(reply.date - time.time()) < 5
    assert server.pending_updates() == []
    polls = [call for call in server.calls if call.method == "getUpdates"]
    assert len(polls) < 10, "long polling must not busy-loop"
    assert {call.params.get("timeout") for call in polls} == {"5", "0"}, "long polls + cleanup"


async def test_an_update_is_never_delivered_twice_across_a_restart(
    server: BotApiServer,
) -> None:
    seen: list[int] = []

    async def record(update: Update, context: Context) -> None:
        seen.append(update.update_id)
        await message_of(update).reply_text("ok")

    handler = MessageHandler(filters.TEXT, record)
    async with polling(server, handler):
        first = server.send_text(USER, "eins")
        await server.wait_for_message(USER)
        second = server.send_text(USER, "zwei")
        await server.wait_for_message(USER)
    assert server.pending_updates() == []

    async with polling(server, handler):
        third = server.send_text(USER, "drei")
        await server.wait_for_message(USER)

    assert seen == [first["update_id"], second["update_id"], third["update_id"]]


async def test_get_updates_offsets_long_poll_and_allowed_updates(server: BotApiServer) -> None:
    first = server.send_text(USER, "a")["update_id"]
    second = server.send_text(USER, "b")["update_id"]

    _, body = await api(server, "getUpdates", data={"timeout": "0"})
    assert [u["update_id"] for u in body["result"]] == [first, second]
    _, body = await api(server, "getUpdates", data={"offset": str(second)})
    assert [u["update_id"] for u in body["result"]] == [second]
    _, body = await api(server, "getUpdates", json={"offset": second + 1, "timeout": 0})
    assert body == {"ok": True, "result": []}

    started = time.monotonic()
    _, body = await api(server, "getUpdates", data={"offset": str(second + 1), "timeout": "0.3"})
    assert body["result"] == [] and time.monotonic() - started >= 0.29

    asyncio.get_running_loop().call_later(0.1, server.send_text, USER, "c")
    started = time.monotonic()
    _, body = await api(server, "getUpdates", data={"offset": str(second + 1), "timeout": "5"})
    assert [u["message"]["text"] for u in body["result"]] == ["c"]
    assert time.monotonic() - started < 2, "a waiting long poll returns when an update arrives"

    server.send_text(USER, "d")
    _, body = await api(server, "getUpdates", data={"offset": "-1"})
    assert [u["message"]["text"] for u in body["result"]] == ["d"]

    await api(server, "getUpdates", data={"allowed_updates": '["callback_query"]', "offset": "-1"})
    server.send_text(USER, "not wanted")
    assert [u["message"]["text"] for u in server.pending_updates()] == ["d"]


async def test_raw_http_answers_look_like_telegram(server: BotApiServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base_url}{TOKEN}/getMe") as response:
            me = await response.json()
        async with http.get(f"{server.base_url}999:WRONG/getMe") as response:
            assert response.status == 401
            assert await response.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
    assert me["result"]["is_bot"] is True and me["result"]["can_join_groups"] is True

    status, body = await api(server, "fooBar")
    assert (status, body["description"]) == (400, "Bad Request: method not found")

    server.add_user(USER)
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    status, body = await api(
        server, "SENDMESSAGE", json={"chat_id": USER, "text": "json", "reply_markup": markup}
    )
    assert status == 200 and body["result"]["reply_markup"] == markup
    assert server.messages_to(USER)[-1].reply_markup == markup


async def test_unknown_token_raises_invalid_token(server: BotApiServer) -> None:
    with pytest.raises(InvalidToken):
        async with bot_for(server, "999:WRONG"):
            pass


# --- commands, buttons, media ---------------------------------------------------------------


async def test_start_with_deep_link_payload_is_a_command_with_args(server: BotApiServer) -> None:
    async def start(update: Update, context: Context) -> None:
        await message_of(update).reply_text(f"args={context.args}")

    async with polling(server, CommandHandler("start", start)):
        update = server.send_text(USER, "/start abc-123")
        reply = await server.wait_for_message(USER)

    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert reply.text == "args=['abc-123']"


async def test_group_commands_and_privacy_mode(server: BotApiServer) -> None:
    async def hilfe(update: Update, context: Context) -> None:
        await message_of(update).reply_text("Hilfe kommt")

    handlers = (CommandHandler("hilfe", hilfe), MessageHandler(filters.TEXT, echo))
    async with polling(server, *handlers):
        server.send_text(USER, "nur geplaudert", chat_id=GROUP, chat_title="Taxi Nord")
        server.send_text(USER, "/hilfe@sicherheitsbot", chat_id=GROUP)
        reply = await server.wait_for_message(GROUP)
        server.send_text(USER, "/hilfe@anderer_bot", chat_id=GROUP)
        server.send_text(USER, "@sicherheitsbot bist du da?", chat_id=GROUP)
        mention = await server.wait_for_message(GROUP)

    assert reply.text == "Hilfe kommt"
    assert reply.message["chat"] == {"id": GROUP, "type": "supergroup", "title": "Taxi Nord"}
    assert mention.text == "echo: @sicherheitsbot bist du da?"
    assert [m.text for m in server.messages_to(GROUP)] == ["Hilfe kommt", mention.text]


async def test_button_press_reaches_the_handler_and_the_edit_is_recorded(
    server: BotApiServer,
) -> None:
    async def menu(update: Update, context: Context) -> None:
        buttons = [InlineKeyboardButton(t, callback_data=t.lower()) for t in ("Ja", "Nein")]
        await message_of(update).reply_text("Wähle:", reply_markup=InlineKeyboardMarkup([buttons]))

    async def button(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        await query.answer(f"gewählt: {query.data}")
        done = InlineKeyboardButton(f"✓ {query.data}", callback_data="done")
        await query.edit_message_reply_markup(InlineKeyboardMarkup([[done]]))

    async with polling(server, CommandHandler("menu", menu), CallbackQueryHandler(button)):
        server.send_text(USER, "/menu")
        prompt = await server.wait_for_message(USER)
        assert [b["callback_data"] for b in prompt.inline_buttons] == ["ja", "nein"]
        update = server.press(USER, prompt.message_id, "ja")
        await server.wait_until(lambda: prompt.edited and bool(server.callback_answers))

    assert update["callback_query"]["chat_instance"]
    answer = server.callback_answers[0]
    assert (answer.text, answer.data, answer.user_id) == ("gewählt: ja", "ja", USER)
    assert prompt.inline_buttons == [{"text": "✓ ja", "callback_data": "done"}]
    assert prompt.history[0]["reply_markup"]["inline_keyboard"][0][1]["text"] == "Nein"
    assert prompt.plain_text == "Wähle:"
    with pytest.raises(ValueError, match="no button"):
        server.press(USER, prompt.message_id, "ja")


async def test_photo_upload_and_download_round_trip(server: BotApiServer) -> None:
    picture = png(300, 200)

    async def photo(update: Update, context: Context) -> None:
        message = message_of(update)
        file = await message.photo[-1].get_file()
        data = bytes(await file.download_as_bytearray())
        await message.reply_text(f"size={len(data)} caption={message.caption}")
        await message.reply_photo(data, caption="<i>zurück</i>", parse_mode="HTML")

    async with polling(server, MessageHandler(filters.PHOTO, photo)):
        update = server.send_photo(USER, picture, caption="Beweisfoto")
        size = await server.wait_for_message(USER)
        returned = await server.wait_for_message(USER)

    sizes = update["message"]["photo"]
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 60), (300, 200)]
    assert size.text == f"size={len(picture)} caption=Beweisfoto"
    assert returned.file is not None and returned.file.data == picture
    assert returned.photo is not None and returned.photo[-1]["width"] == 300
    assert (returned.plain_text, returned.entities[0]["type"]) == ("zurück", "italic")


async def test_other_media_by_upload_and_by_file_id(server: BotApiServer) -> None:
    server.add_user(USER)
    async with bot_for(server) as bot:
        document = await bot.send_document(USER, b"%PDF-1.4 test", filename="bericht.pdf")
        assert document.document is not None
        again = await bot.send_document(USER, document.document.file_id, caption="nochmal")
        await bot.send_voice(USER, b"OggS voice", duration=3)
        await bot.send_video(USER, b"\x00\x00\x00\x18ftypmp42", duration=2, width=64, height=48)
        await bot.send_location(USER, 53.55, 9.99)
        with pytest.raises(BadRequest, match=r"(?i)can't use file of type document as photo"):
            await bot.send_photo(USER, document.document.file_id)
        with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
            await bot.send_voice(USER, "AwACunknown")

    assert again.document is not None
    assert again.document.file_id == document.document.file_id
    assert document.document.file_name == "bericht.pdf"
    sent = server.messages_to(USER)
    assert [m.method for m in sent] == [
        "sendDocument",
        "sendDocument",
        "sendVoice",
        "sendVideo",
        "sendLocation",
    ]
    assert server.file_bytes(document.document.file_id) == b"%PDF-1.4 test"
    assert sent[2].voice is not None and sent[2].voice["duration"] == 3
    assert sent[3].video is not None and (sent[3].video["width"], sent[3].video["height"]) == (
        64,
        48,
    )
    assert sent[4].location == {"latitude": 53.55, "longitude": 9.99}


async def test_location_keyboard_and_unsupported_content(server: BotApiServer) -> None:
    async def ask_location(update: Update, context: Context) -> None:
        button = KeyboardButton("Standort senden", request_location=True)
        markup = ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
        await message_of(update).reply_text("Wo bist du?", reply_markup=markup)

    async def got_location(update: Update, context: Context) -> None:
        location = message_of(update).location
        assert location is not None
        text = f"{location.latitude},{location.longitude}"
        await message_of(update).reply_text(text, reply_markup=ReplyKeyboardRemove())

    async def anything(update: Update, context: Context) -> None:
        message = message_of(update)
        kinds = ("sticker", "contact", "poll", "voice", "video", "document")
        await message.reply_text(next(k for k in kinds if getattr(message, k)))

    handlers = (
        CommandHandler("ort", ask_location),
        MessageHandler(filters.LOCATION, got_location),
        MessageHandler(filters.ALL, anything),
    )
    async with polling(server, *handlers):
        server.send_text(USER, "/ort")
        question = await server.wait_for_message(USER)
        server.send_location(USER, 53.5511, 9.9937)
        answer = await server.wait_for_message(USER)
        server.send_sticker(USER)
        server.send_contact(USER)
        server.send_poll(USER)
        server.send_voice(USER, b"OggS")
        server.send_video(USER, b"mp4")
        server.send_document(USER, b"%PDF")
        kinds = [(await server.wait_for_message(USER)).text for _ in range(6)]

    assert question.reply_markup is not None
    assert question.reply_markup["keyboard"][0][0]["request_location"] is True
    assert "reply_markup" not in question.message, "reply keyboards are not echoed back"
    assert answer.text == "53.5511,9.9937"
    assert answer.reply_markup == {"remove_keyboard": True}
    assert kinds == ["sticker", "contact", "poll", "voice", "video", "document"]


# --- errors, limits and faults --------------------------------------------------------------


async def test_blocked_user_raises_forbidden(server: BotApiServer) -> None:
    server.add_user(USER)
    server.block(USER)
    async with bot_for(server) as bot:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(USER, "Hallo")
        with pytest.raises(Forbidden):
            await bot.send_chat_action(USER, "typing")
        server.unblock(USER)
        await bot.send_message(USER, "wieder da")

    assert [m.text for m in server.messages_to(USER)] == ["wieder da"]
    assert server.sent_count == 1
    statuses = [u["my_chat_member"]["new_chat_member"]["status"] for u in server.pending_updates()]
    assert statuses == ["kicked", "member"]


async def test_retry_after_and_injected_failures(server: BotApiServer) -> None:
    server.add_user(USER)
    server.retry_after_next(7)
    server.fail_next("sendMessage", status=502)
    async with bot_for(server) as bot:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(USER, "eins")
        assert seconds(caught.value.retry_after) == 7
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(USER, "eins")
        await bot.send_message(USER, "eins")

    assert [m.text for m in server.messages_to(USER)] == ["eins"]
    assert [c.status for c in server.calls if c.method == "sendMessage"] == [429, 502, 200]


async def test_flood_limits_per_chat_group_and_overall() -> None:
    limits = FloodLimits(overall_per_second=3, private_chat_per_second=1, group_per_minute=2)
    async with BotApiServer(flood_limits=limits) as server:
        server.add_bot(TOKEN)
        for user in (1, 2, 3, 4, USER):
            server.add_user(user)
        server.send_text(USER, "hallo", chat_id=GROUP)
        async with bot_for(server) as bot:
            await bot.send_message(1, "a")
            with pytest.raises(RetryAfter) as per_chat:
                await bot.send_message(1, "b")
            await bot.send_message(2, "a")
            await bot.send_message(GROUP, "a")
            with pytest.raises(RetryAfter) as overall:
                await bot.send_message(3, "a")
        assert server.sent_count == 3
    assert seconds(per_chat.value.retry_after) == 1
    assert seconds(overall.value.retry_after) == 1


async def test_answers_to_people_who_just_wrote_are_not_bulk() -> None:
    limits = FloodLimits(overall_per_second=2, replies_exempt_seconds=10)
    async with BotApiServer(flood_limits=limits) as server:
        server.add_bot(TOKEN)
        for user in (1, 2, 3, 4):
            server.add_user(user)
        server.send_text(3, "hallo")
        async with bot_for(server) as bot:
            await bot.send_message(1, "Warnung")
            await bot.send_message(2, "Warnung")
            await bot.send_message(3, "Antwort")  # an answer: the overall limit is full
            with pytest.raises(RetryAfter):
                await bot.send_message(4, "Warnung")
        assert [m.chat_id for m in server.sent_messages()] == [1, 2, 3]
        assert all(m.received > 0 for m in server.sent_messages())


async def test_a_private_chat_takes_a_short_burst_then_one_a_second() -> None:
    limits = FloodLimits(private_chat_burst=3, time_scale=10)
    async with BotApiServer(flood_limits=limits) as server:
        server.add_bot(TOKEN)
        server.add_user(USER)
        async with bot_for(server) as bot:
            for text in ("a", "b", "c"):
                await bot.send_message(USER, text)
            with pytest.raises(RetryAfter):
                await bot.send_message(USER, "d")
            await asyncio.sleep(1.1 / limits.time_scale)  # one emulated second refills one
            await bot.send_message(USER, "d")
            with pytest.raises(RetryAfter):
                await bot.send_message(USER, "e")
        assert [m.text for m in server.messages_to(USER)] == ["a", "b", "c", "d"]


async def test_flood_limits_with_compressed_time() -> None:
    limits = FloodLimits(group_per_minute=2, time_scale=200)
    async with BotApiServer(flood_limits=limits) as server:
        server.add_bot(TOKEN)
        server.send_text(USER, "hallo", chat_id=GROUP)
        async with bot_for(server) as bot:
            for text in ("a", "b"):
                await bot.send_message(GROUP, text)
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(GROUP, "c")
            wait = seconds(caught.value.retry_after)
            assert 55 <= wait <= 60
            await asyncio.sleep(
                (wait + 1) / limits.time_scale
            )  # emulated time passing; +1: retry_after is whole seconds
            await bot.send_message(GROUP, "c")
        assert [m.text for m in server.messages_to(GROUP)] == ["a", "b", "c"]


async def test_transient_failures_are_seeded_and_never_duplicate() -> None:
    async with BotApiServer(transient_failure_rate=0.3, seed=7) as server:
        server.add_bot(TOKEN)
        server.add_user(USER)
        failures = 0
        async with bot_for(server) as bot:
            for number in range(20):
                while True:
                    try:
                        await bot.send_message(USER, str(number))
                        break
                    except NetworkError:
                        failures += 1
        texts = [m.text for m in server.messages_to(USER)]
    assert texts == [str(n) for n in range(20)]
    assert server.sent_count == 20
    assert failures > 0


async def test_text_and_markup_validation(server: BotApiServer) -> None:
    server.add_user(USER)
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
    async with bot_for(server) as bot:
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(USER, "x" * 4097)
        await bot.send_message(USER, "x" * 4096)
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(USER, "   ")
        with pytest.raises(BadRequest, match=r'(?i)end tag corresponding to start tag "b"'):
            await bot.send_message(USER, "<b>fett", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "blink"'):
            await bot.send_message(USER, "<blink>x</blink>", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"(?i)character '.' is reserved"):
            await bot.send_message(USER, "Hallo.", parse_mode="MarkdownV2")
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(USER, "x", reply_markup=too_long_data)
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(999, "x")
        with pytest.raises(BadRequest, match="Method not found"):
            await bot.do_api_request("fooBar")
        html = '<b>fett</b> &amp; <a href="https://example.org">Link</a>'
        formatted = await bot.send_message(USER, html, parse_mode="HTML")
        escaped = await bot.send_message(USER, "Hallo\\.", parse_mode="MarkdownV2")

    assert formatted.text == "fett & Link"
    assert [(e.type, e.offset, e.length) for e in formatted.entities] == [
        ("bold", 0, 4),
        ("text_link", 7, 4),
    ]
    assert escaped.text == "Hallo."
    sent = server.messages_to(USER)
    assert [m.parse_mode for m in sent] == [None, "HTML", "MarkdownV2"]
    assert sent[1].text == html


async def test_edit_and_delete_errors(server: BotApiServer) -> None:
    server.add_user(USER)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    async with bot_for(server) as bot:
        sent = await bot.send_message(USER, "alt", reply_markup=keyboard)
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("alt", USER, sent.message_id, reply_markup=keyboard)
        edited = await bot.edit_message_text("<b>neu</b>", USER, sent.message_id, parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", USER, 999)
        assert await bot.delete_message(USER, sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(USER, sent.message_id)

    assert isinstance(edited, Message) and edited.text == "neu"
    assert edited.reply_markup is None, "editing text without reply_markup drops the keyboard"
    record = server.messages_to(USER)[0]
    assert (record.text, record.edited, record.deleted) == ("<b>neu</b>", True, True)
    assert record.history[0]["text"] == "alt"


async def test_set_my_commands_is_stored_per_scope_and_language(server: BotApiServer) -> None:
    private_de = [BotCommand("start", "Starten"), BotCommand("hilfe", "Hilfe anzeigen")]
    async with bot_for(server) as bot:
        await bot.set_my_commands(private_de, BotCommandScopeAllPrivateChats(), "de")
        await bot.set_my_commands([BotCommand("start", "Start")])
        await bot.set_my_commands([BotCommand("melden", "Melden")], BotCommandScopeChat(USER))
        fetched = await bot.get_my_commands(BotCommandScopeAllPrivateChats(), "de")
        assert await bot.get_my_commands(BotCommandScopeAllPrivateChats()) == ()
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Start!", "nope")])
        stored = server.commands("all_private_chats", "de")
        await bot.delete_my_commands(BotCommandScopeAllPrivateChats(), "de")

    assert [(c.command, c.description) for c in fetched] == [
        ("start", "Starten"),
        ("hilfe", "Hilfe anzeigen"),
    ]
    assert stored == [
        {"command": "start", "description": "Starten"},
        {"command": "hilfe", "description": "Hilfe anzeigen"},
    ]
    assert server.commands() == [{"command": "start", "description": "Start"}]
    assert server.commands({"type": "chat", "chat_id": USER}) == [
        {"command": "melden", "description": "Melden"}
    ]
    assert server.commands("all_private_chats", "de") == []


async def test_chat_action_get_chat_and_menu_button(server: BotApiServer) -> None:
    server.add_user(USER, first_name="Erika", username="erika_m")
    async with bot_for(server) as bot:
        await bot.send_chat_action(USER, "typing")
        chat = await bot.get_chat("@erika_m")
        member = await bot.get_chat_member(USER, USER)
        await bot.set_chat_menu_button(USER)
        with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
            await bot.send_chat_action(USER, "dancing")

    assert [(a.chat_id, a.action) for a in server.chat_actions] == [(USER, "typing")]
    assert (chat.id, chat.first_name) == (USER, "Erika")
    assert member.status == "member"
    assert server.sent_count == 0


# --- webhooks -----------------------------------------------------------------------------


@asynccontextmanager
async def custom_webhook(app: App, secret: str) -> AsyncIterator[str]:
    """PTB's documented custom-webhook pattern on aiohttp; yields the webhook URL."""

    async def receive(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
            return web.Response(status=403)
        await app.update_queue.put(Update.de_json(await request.json(), app.bot))
        return web.Response()

    web_app = web.Application()
    web_app.router.add_post("/telegram", receive)
    runner = web.AppRunner(web_app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/telegram"
    finally:
        await runner.cleanup()


async def test_webhook_push_secret_and_retry(server: BotApiServer) -> None:
    builder = ApplicationBuilder().token(TOKEN).updater(None)
    app = builder.base_url(server.base_url).base_file_url(server.base_file_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app, custom_webhook(app, SECRET) as url:
        await app.start()
        try:
            await app.bot.set_webhook(url, secret_token="falsches-geheimnis")
            with pytest.raises(Conflict, match="webhook is active"):
                await app.bot.get_updates()
            server.send_text(USER, "per webhook")
            await server.wait_until(
                lambda: "403" in server.webhook_info().get("last_error_message", ""), timeout=3
            )
            assert server.webhook_info()["pending_update_count"] == 1
            assert server.messages_to(USER) == []

            await app.bot.set_webhook(url, secret_token=SECRET)
            reply = await server.wait_for_message(USER)
            info = await app.bot.get_webhook_info()
            await app.bot.delete_webhook()
        finally:
            await app.stop()

    assert reply.text == "echo: per webhook"
    assert info.url == url and info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 403 Forbidden"
    assert server.webhook_info() == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 0,
    }


async def test_set_webhook_refuses_non_loopback_urls(server: BotApiServer) -> None:
    async with bot_for(server) as bot:
        with pytest.raises(BadRequest, match=r"(?i)bad webhook"):
            await bot.set_webhook("https://example.org/hook")


async def test_ptb_updater_webhook_receives_pushes_and_rejects_wrong_secret(
    server: BotApiServer,
) -> None:
    app = build_app(server, MessageHandler(filters.TEXT, echo))
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    await app.initialize()
    try:
        await app.start()
        assert app.updater is not None
        await app.updater.start_webhook(
            listen="127.0.0.1", port=port, url_path="hook", secret_token=SECRET
        )
        assert server.webhook_info()["url"] == url
        update = server.send_text(USER, "via PTB webhook")
        reply: SentMessage = await server.wait_for_message(USER)
        async with aiohttp.ClientSession() as http:
            headers = {"X-Telegram-Bot-Api-Secret-Token": "falsch"}
            async with http.post(url, json=update, headers=headers) as wrong:
                wrong_status = wrong.status
            async with http.post(url, json=update) as missing:
                missing_status = missing.status
    finally:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    assert reply.text == "echo: via PTB webhook"
    assert (wrong_status, missing_status) == (403, 403)
    assert len(server.messages_to(USER)) == 1
