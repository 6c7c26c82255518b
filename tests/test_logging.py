"""Logs: useful at INFO, never a person's words, places, plates or numbers in them."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from bot import logs
from bot.runtime import Runtime
from bot.scheduler import BotScheduler
from bot.storage.models import ConversationEntry, utcnow
from tests.peers.botapi import BotApiServer, SentMessage
from tests.test_cli import BOT
from tests.test_telegram import button
from tests.test_telegram import press as press_in_chat

ROOT = Path(__file__).resolve().parents[1]

PLANTED = "Kennzeichen K-QX 9173, Tel. 0171 5550199"


def logged(error: BaseException) -> str:
    """An ERROR line with its traceback, as the bot's log handler writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.PrivateFormatter(logs.FORMAT, secrets=["hunter22"]))
    record = logging.LogRecord("bot.test", logging.ERROR, __file__, 1, "event failed", (), None)
    record.exc_info = (type(error), error, error.__traceback__)
    handler.emit(record)
    return stream.getvalue()


async def test_an_error_traceback_carries_no_sql_parameters_nor_quoted_rows(
    runtime: Runtime,
) -> None:
    row = {"at": utcnow(), "transport": None, "chat_id": "c", "direction": "in", "kind": "text"}
    with pytest.raises(IntegrityError) as caught:
        async with runtime.engine.begin() as connection:
            await connection.execute(insert(ConversationEntry), [{**row, "text": PLANTED}])
    written = logged(caught.value)
    assert "IntegrityError" in written and "Traceback" in written
    # SQLAlchemy's "[parameters: ...]" (hidden by the engine) and PostgreSQL's
    # "DETAIL: Failing row contains (...)" (taken out by the formatter) both quote it.
    assert "K-QX 9173" not in written and "5550199" not in written


async def test_the_job_store_hides_parameters_too(runtime: Runtime) -> None:
    scheduler = BotScheduler(runtime)
    try:
        engine = scheduler.scheduler._jobstores["default"].engine
        with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
            connection.execute(
                text("INSERT INTO conversation_log (transport, text) VALUES (NULL, :text)"),
                {"text": PLANTED},
            )
        assert "K-QX 9173" not in logged(caught.value)
    finally:
        await scheduler.shutdown()


def test_secrets_are_taken_out_of_every_line() -> None:
    try:
        raise ConnectionError("login to postgresql://bot:hunter22@db failed")
    except ConnectionError as error:
        written = logged(error)
    assert "hunter22" not in written and "bot:[hidden]@db" in written


# -- `sicherheitsbot run` against the Bot API test server, as an operator runs it -------------

TOKEN = "424242:LOGtestTOKENabcdefghijklmnopqrstu"
PERSON = 5551234
# What a person gives the bot: a name on their account, and what they type and share.
GIVEN = {
    "name": "Zbigniew Quaxelmeier",
    "plate": "K-QX 9173",
    "phone": "0171 5550199",
    "place": "Rastplatz Quaxelheide",
    "latitude": "51.14357",
}


# The bot runs in its own process with Telegram's real pacing (one message a second per
# chat): waits are generous, so a busy machine slows the test instead of failing it.
WAIT = 60.0


async def question(server: BotApiServer) -> SentMessage:
    """The bot's next message to the person that has buttons (the end of a reply)."""
    return await server.wait_for_message(PERSON, lambda m: bool(m.inline_buttons), WAIT)


async def press(server: BotApiServer, message: SentMessage, label: str) -> SentMessage:
    return await press_in_chat(server, message, label, PERSON, WAIT)


async def chat_through_the_bot(server: BotApiServer) -> None:
    """Onboard, then say and share personal things and start a report with them."""
    server.add_user(PERSON, first_name="Zbigniew", last_name="Quaxelmeier")
    server.send_text(PERSON, "/start")
    asked = await question(server)
    for label in ("✅", "Lkw", "Köln"):
        asked = await press(server, asked, label)
    server.send_text(PERSON, f"{GIVEN['plate']} und {GIVEN['phone']}")
    await question(server)
    server.send_location(PERSON, 51.14357, 7.02671)
    await question(server)
    server.send_text(PERSON, "/report")
    asked = await press(server, await question(server), "Nein")
    words = await press(server, asked, "Ladungsdiebstahl")
    server.press(PERSON, words.message_id, button(words, "Überspringen"), chat_id=PERSON)
    # The place question: one message, its keyboard with the location button.
    await server.wait_for_message(PERSON, lambda m: "keyboard" in (m.reply_markup or {}), WAIT)
    server.send_text(PERSON, GIVEN["place"])
    await server.wait_for_message(PERSON, lambda m: "Foto" in (m.plain_text or ""), WAIT)


async def run_bot(
    tmp_path: Path, server: BotApiServer, args: list[str], env: dict[str, str]
) -> str:
    """`sicherheitsbot [args] run` until the chat is done, then SIGTERM; its log."""
    config = tmp_path / "config.toml"
    config.write_text(
        f"[bot]\ndata_dir = '{tmp_path / 'data'}'\n"
        f"[telegram]\nenabled = true\nbase_url = '{server.base_url}'\n"
        f"base_file_url = '{server.base_file_url}'\ncoordinator_chat_id = -1001234\n",
        encoding="utf-8",
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    log_file = tmp_path / "bot.log"
    with log_file.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *BOT, *args, "run", "--config", str(config),
            stdout=sink, stderr=sink, cwd=ROOT,
            env={**clean, "SICHERHEITSBOT_TELEGRAM__TOKEN": TOKEN, **env},
        )  # fmt: skip
        try:
            await chat_through_the_bot(server)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 60)
    written = log_file.read_text(encoding="utf-8")
    assert code == 0, written[-3000:]
    return written


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    peer = BotApiServer()
    peer.add_bot(TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


def personal_data_in(written: str) -> list[str]:
    return [key for key, value in GIVEN.items() if value in written]


async def test_run_logs_at_info_by_default_with_no_personal_data(
    tmp_path: Path, server: BotApiServer
) -> None:
    written = await run_bot(tmp_path, server, [], {})
    assert "INFO bot.cli: sicherheitsbot starting: database sqlite, transports telegram" in written
    assert "telegram: @sicherheitsbot running (polling)" in written
    assert "serving 1 transport(s)" in written
    summary = re.search(r"until stop: (\d+) events handled \(([^)]*)\)", written)
    assert summary is not None, written[-3000:]
    assert int(summary.group(1)) >= 10 and "location 1" in summary.group(2)
    assert " DEBUG " not in written
    assert personal_data_in(written) == []
    assert TOKEN not in written and "LOGtestTOKEN" not in written


async def test_debug_logs_our_events_but_no_library_payloads(
    tmp_path: Path, server: BotApiServer
) -> None:
    written = await run_bot(tmp_path, server, ["--log-level", "debug"], {})
    assert " DEBUG bot.core.pipeline: handled location from telegram user 1" in written
    assert "Calling Bot API endpoint" not in written
    assert personal_data_in(written) == []
    assert "LOGtestTOKEN" not in written


async def test_library_payloads_only_when_asked_and_even_then_no_token(
    tmp_path: Path, server: BotApiServer
) -> None:
    env = {
        "SICHERHEITSBOT_LOGGING__LEVEL": "DEBUG",
        "SICHERHEITSBOT_LOGGING__LIBRARY_PAYLOADS": "1",
    }
    written = await run_bot(tmp_path, server, [], env)
    # Asked for: PTB's request payloads are there, with what the person typed...
    assert "Calling Bot API endpoint" in written
    assert "plate" in personal_data_in(written)
    # ...but the token in every request URL is not.
    assert "LOGtestTOKEN" not in written and "[hidden]" in written
