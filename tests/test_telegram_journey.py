"""The report journey on Telegram (issue 13), against the Bot API test server over HTTP:
inputs counted from /report to the reference, reports to coordinators named personally,
an alert in the middle of a report, the first screen in the reported language, and a
stale press answered by its own toast."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.core.events import Choice, Reply
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import Acknowledgement, OutboxMessage, Report
from tests.peers.botapi import BotApiServer, SentMessage
from tests.telegram_fixtures import USER, Harness
from tests.test_alerts import add_broadcast
from tests.test_telegram import (
    button,
    eventually,
    location_question,
    onboard,
    png,
    press,
    telegram_user,
    text_of,
    with_buttons,
)

REFERENCE = re.compile(r"SP-\d{4}-\d{6}")
COORDINATOR = 9001


async def test_quick_report_on_telegram_takes_six_inputs(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    await onboard(server)
    inputs = 0

    before = len(server.messages_to(USER))
    server.send_text(USER, "/report")
    inputs += 1
    question = await with_buttons(server)
    assert "110" in text_of(question)
    question = await press(server, question, "Nein")
    inputs += 1
    server.send_text(USER, "Zwei Männer schneiden auf dem Autohof Planen auf")
    inputs += 1
    await server.wait_for_message(USER, lambda m: "Wo war das" in text_of(m))
    server.send_location(USER, 51.6, 7.8)  # the "📍 Send my location" button
    inputs += 1
    await server.wait_for_message(USER, lambda m: "Foto" in text_of(m))
    server.send_photo(USER, png(40, 30))
    inputs += 1
    summary = await server.wait_for_message(USER, lambda m: "bitte prüfen" in text_of(m).lower())
    thanks = await press(server, summary, "Rückfragen erlaubt")
    inputs += 1

    found = REFERENCE.search(text_of(thanks))
    assert found is not None and inputs == 6
    assert len(server.messages_to(USER)) - before == inputs, "each answer is one message"
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.reference == found[0]
    assert report.category == "cargo_theft" and len(report.answers["media"]) == 1


async def test_the_place_question_is_one_message_and_its_buttons_answer_it(
    bot: Harness, server: BotApiServer
) -> None:
    await bot.start()
    await onboard(server)
    server.send_text(USER, "/report")
    await press(server, await with_buttons(server), "Nein")
    server.send_text(USER, "Planen aufgeschlitzt")
    place = await location_question(server)
    assert server.messages_to(USER)[-1] is place, "no second message for the other choices"
    rows = (place.reply_markup or {})["keyboard"]
    back = next(found["text"] for row in rows[1:] for found in row if "Zurück" in found["text"])
    server.send_text(USER, back)  # a reply-keyboard button sends its label as text
    await server.wait_for_message(USER, lambda m: "Was haben Sie beobachtet" in text_of(m))


async def test_a_telegram_only_deployment_sends_reports_to_coordinators_personally(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    # No coordinator group: each named coordinator gets the report in their own chat.
    await bot.start(coordinators=[COORDINATOR], coordinator_chat_id=None)
    # A bot may write only to people who opened it: the coordinator did, once.
    server.send_text(COORDINATOR, "/help")
    await with_buttons(server, COORDINATOR)
    await onboard(server)
    server.send_text(USER, "/report")
    await press(server, await with_buttons(server), "Nein")
    server.send_text(USER, "Verdächtiger Transporter kreist um die Lkw")
    await server.wait_for_message(USER, lambda m: "Wo war das" in text_of(m))
    server.send_text(USER, "Rastplatz Siegerland Ost, A45")
    media = await server.wait_for_message(USER, lambda m: "Foto" in text_of(m))

    async def has_buttons() -> bool:  # added by an edit (the location keyboard went first)
        return bool(media.inline_buttons)

    await eventually(has_buttons)
    summary = await press(server, media, "Überspringen")
    thanks = await press(server, summary, "Rückfragen erlaubt")
    found = REFERENCE.search(text_of(thanks))
    assert found is not None

    card = await server.wait_for_message(COORDINATOR, lambda m: found[0] in text_of(m))
    assert "Siegerland" in text_of(card) and "tg://user?id=" in text_of(card)
    changed = await press(server, card, "Polizei", user=COORDINATOR)
    assert "an die Polizei gegeben" in text_of(changed)
    notice = await server.wait_for_message(USER, lambda m: "Neuigkeit" in text_of(m))
    assert found[0] in text_of(notice)
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    assert {row.transport for row in rows} == {"telegram"}  # nothing for the terminal


async def queue_alert(runtime: Runtime, broadcast_id: int) -> None:
    async with transaction(runtime.sessions) as session:
        user = await repos.get_user(session, "telegram", str(USER))
        assert user is not None
        await repos.queue_outbox(
            session,
            transport="telegram",
            chat_id=str(USER),
            user_id=user.id,
            kind="alert",
            broadcast_id=broadcast_id,
            replies=[
                Reply(
                    "Planenschlitzer auf der A1",
                    title="⚠️ Warnung",
                    choices=[Choice(f"ack:{broadcast_id}", "✅ Verstanden")],
                )
            ],
        )


async def test_an_alert_in_the_middle_of_a_report_is_followed_by_the_open_question(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    await onboard(server)
    server.send_text(USER, "/report")
    category = await press(server, await with_buttons(server), "Nein")
    broadcast_id = await add_broadcast(runtime, texts={"de": "Planenschlitzer auf der A1"})
    await queue_alert(runtime, broadcast_id)
    alert = await server.wait_for_message(USER, lambda m: "Planenschlitzer" in text_of(m))
    again: SentMessage = await server.wait_for_message(
        USER, lambda m: "Was haben Sie beobachtet?" in text_of(m) and m is not category
    )
    assert again.message_id > alert.message_id
    server.send_text(USER, "3")  # the open question takes the number: cargo theft
    await server.wait_for_message(USER, lambda m: "In eigenen Worten" in text_of(m))
    server.press(USER, alert.message_id, button(alert, "Verstanden"))
    await server.wait_for_message(USER, lambda m: "Kenntnisnahme" in text_of(m))
    async with runtime.sessions() as session:
        assert await session.scalar(select(Acknowledgement)) is not None


async def test_the_first_screen_speaks_the_language_telegram_reports(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    server.send_text(USER, "/start", language_code="pl")
    consent = await with_buttons(server)
    assert "Czy się zgadzasz?" in text_of(consent)
    labels = [found["text"] for found in consent.inline_buttons]
    assert "🇩🇪 Deutsch" in labels and "🇬🇧 English" in labels
    english = await press(server, consent, "English")
    assert "Do you agree?" in text_of(english)
    assert (await telegram_user(runtime)).language == "en"


async def test_a_stale_press_is_answered_by_its_own_toast(
    bot: Harness, server: BotApiServer
) -> None:
    await bot.start()
    await onboard(server)
    server.send_text(USER, "/report")
    urgent = await with_buttons(server)
    before = len(server.messages_to(USER))
    data = button(urgent, "Nein")
    server.press(USER, urgent.message_id, data)
    server.press(USER, urgent.message_id, data)  # a double tap: the second one is stale

    async def answered_twice() -> bool:
        return len([a for a in server.callback_answers if a.data == data]) == 2

    await eventually(answered_twice)
    first, second = [a for a in server.callback_answers if a.data == data]
    assert first.text is None
    assert second.text is not None and "gilt nicht mehr" in second.text  # its own toast
    await server.wait_for_message(USER, lambda m: "Was haben Sie beobachtet?" in text_of(m))
    questions = [m for m in server.messages_to(USER)[before:]]
    # The category question, and the open question once more: no other message.
    assert len(questions) == 2
    assert all("Was haben Sie beobachtet?" in text_of(m) for m in questions)


def label(message: SentMessage, part: str) -> str:
    return next(str(b["text"]) for b in message.inline_buttons if part in str(b["text"]))


async def test_a_pressed_question_turns_into_the_next_one_where_the_person_sees_it(
    bot: Harness, server: BotApiServer
) -> None:
    """One edit instead of a tick and a new message (issue 16): Telegram paces new
    messages at one a second per chat, edits not; the chat stays short."""
    await bot.start()
    await onboard(server)
    server.send_text(USER, "/report")
    urgent = await with_buttons(server)
    what = await press(server, urgent, "Nein")
    # The 110 question stays as it was, its pick below it; the next question comes below.
    assert what is not urgent and urgent.inline_buttons == []
    assert "110" in text_of(urgent) and text_of(urgent).endswith("\n\n✓ Nein")

    # Below newer messages a question would change out of sight: there the pick is
    # ticked, and the next question comes as a new message.
    server.send_text(USER, "/tips")  # the tips, then the open question once more
    again = await server.wait_for_message(USER, lambda m: "Was haben Sie" in text_of(m))
    assert again is not what
    server.press(USER, what.message_id, button(what, "Ladungsdiebstahl"))
    words = await server.wait_for_message(USER, lambda m: "In eigenen Worten" in text_of(m))
    assert text_of(what).endswith("✓ " + label(again, "Ladungsdiebstahl"))

    # On the newest question: one edit, no new message.
    before, picked = len(server.messages_to(USER)), label(words, "Überspringen")
    server.press(USER, words.message_id, button(words, "Überspringen"))
    place = await location_question(server)  # the location keyboard needs a new message
    assert len(server.messages_to(USER)) == before + 1
    server.send_location(USER, 51.1435, 7.0267)
    media = await server.wait_for_message(USER, lambda m: "Foto" in text_of(m))
    await server.wait_until(lambda: bool(media.inline_buttons))  # added by an edit
    before = len(server.messages_to(USER))
    summary = await press(server, media, "Überspringen")
    assert summary is media and len(server.messages_to(USER)) == before, "no new message"
    assert text_of(summary).startswith(f"✓ {picked}\n\n") and "prüfen" in text_of(summary)
    assert place is not media


async def test_a_photo_is_downloaded_only_when_a_report_step_wants_it(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()

    def downloads() -> int:
        return len([call for call in server.calls if call.method == "getFile"])

    def stored() -> list[str]:
        return [p.name for p in runtime.core.media.directory.rglob("*") if p.is_file()]

    server.send_photo(USER, png(30, 20))  # a stranger who has not agreed to anything
    await server.wait_for_message(USER, lambda m: "nicht verwenden" in text_of(m))
    await onboard(server)
    server.send_photo(USER, png(31, 20))  # agreed, but no report open
    await server.wait_for_message(USER, lambda m: "nicht verwenden" in text_of(m))
    server.send_text(USER, "/report")
    await press(server, await with_buttons(server), "Nein")
    server.send_photo(USER, png(32, 20))  # at "what did you see?": not a photo question
    await server.wait_for_message(USER, lambda m: "nicht verwenden" in text_of(m))
    assert downloads() == 0 and stored() == []
    server.send_text(USER, "Transporter am Rastplatz")
    await server.wait_for_message(USER, lambda m: "Wo war das" in text_of(m))
    server.send_text(USER, "Rastplatz Siegerland Ost")
    await server.wait_for_message(USER, lambda m: "Foto" in text_of(m))
    server.send_photo(USER, png(33, 20))  # now a step wants it
    await server.wait_for_message(USER, lambda m: "bitte prüfen" in text_of(m).lower())
    assert downloads() == 1 and len(stored()) == 1


async def test_personal_data_is_never_posted_in_a_group(bot: Harness, server: BotApiServer) -> None:
    await bot.start()
    await onboard(server)  # the person agreed, in their private chat
    group = -1005550001
    command = server.send_text(USER, "/mydata@sicherheitsbot", chat_id=group, chat_title="Fahrer")
    answer = await server.wait_for_message(group)
    assert "direkten Chat" in text_of(answer)
    assert answer.reply_to_message_id == command["message"]["message_id"]
    server.send_text(USER, "/myreports@sicherheitsbot", chat_id=group)
    await server.wait_for_message(
        group, lambda m: "direkten Chat" in text_of(m) and m is not answer
    )
    assert all(m.document is None for m in server.messages_to(group))  # no export posted
