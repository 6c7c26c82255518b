"""Onboarding, menu, cancel and settings through the terminal transport, in every language."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.models import ConversationEntry, DialogueState, User
from tests.chat import Chat
from tests.conftest import POSTGRES_URL

LANGUAGES = [
    # language button, role label, region label, a word of the menu, of "cancelled", of settings
    ("Deutsch", "Lkw", "Köln", "Was möchten Sie tun?", "Abgebrochen", "Sprache:"),
    ("English", "Truck", "Cologne", "What would you like to do?", "Cancelled", "Language:"),
    ("Polski", "Kierowca", "Kolonia", "Co chcesz zrobić?", "Przerwano", "Język:"),
]


@pytest.mark.parametrize(("language", "role", "region", "menu", "cancelled", "current"), LANGUAGES)
async def test_new_user_onboards_and_uses_menu_in_their_language(
    chat: Chat,
    runtime: Runtime,
    language: str,
    role: str,
    region: str,
    menu: str,
    cancelled: str,
    current: str,
) -> None:
    await chat.send("/start")
    assert "110" in chat.screen
    if language != "Deutsch":  # greeted in the platform's language, the others one tap away
        await chat.press(language)
    assert "110" not in chat.labels  # privacy notice with its choices
    await chat.press("✅")
    await chat.press(role)
    await chat.press(region)
    assert menu in chat.screen

    await chat.send("/settings")
    assert current in chat.screen and region in chat.screen
    await chat.send("/report")  # any dialogue
    await chat.send("/cancel")
    assert cancelled in chat.screen

    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "driver"))
    assert user is not None and user.consent_at is not None
    assert user.role == "truck_driver" and user.region == "koeln"
    assert user.language == {"Deutsch": "de", "English": "en", "Polski": "pl"}[language]


async def test_numbers_and_labels_typed_pick_options(chat: Chat, runtime: Runtime) -> None:
    await chat.send("/start")
    await chat.send("3")  # English
    await chat.send("I agree")  # the label, without its emoji
    await chat.send("4")  # taxi
    await chat.send("köln")  # region label in any case
    assert "What would you like to do?" in chat.screen
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "driver"))
    assert user is not None and (user.language, user.role, user.region) == (
        "en",
        "taxi_driver",
        "koeln",
    )


async def test_settings_change_one_field_and_keep_the_others(chat: Chat, runtime: Runtime) -> None:
    await chat.onboard()
    await chat.send("/settings")
    await chat.press("Region")
    await chat.press("Münster")
    assert "Gespeichert" in chat.screen
    await chat.send("/settings")
    await chat.press("Sprache")
    await chat.press("Polski")
    assert "Zapisano" in chat.screen
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "driver"))
    assert user is not None and (user.language, user.role, user.region) == (
        "pl",
        "truck_driver",
        "muenster",
    )


async def test_declining_consent_stores_nothing_but_id_and_language(
    chat: Chat, runtime: Runtime
) -> None:
    await chat.send("/start")
    await chat.press("English")
    await chat.press("No thanks")
    assert "nothing is stored" in chat.screen
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "driver"))
        texts = (await session.scalars(select(ConversationEntry.text))).all()
    assert user is not None
    assert (user.consent_at, user.role, user.region, user.language) == (None, None, None, "en")
    assert set(texts) == {None}  # logged as events, without their words
    await chat.send("/settings")  # needs consent: onboarding again, in the language chosen
    assert "Do you agree?" in chat.screen


async def test_free_text_that_matches_nothing_gets_the_menu(chat: Chat) -> None:
    await chat.onboard()
    await chat.send("Guten Tag, wie geht's?")
    assert "nicht verstanden" in chat.screen
    assert "⚙️ Einstellungen" in chat.labels


async def test_every_message_in_and_out_is_in_the_conversation_log(
    chat: Chat, runtime: Runtime
) -> None:
    await chat.onboard()
    sent = 4
    await chat.send("/menu")
    await chat.send("hallo")
    sent += 2
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(select(ConversationEntry).order_by(ConversationEntry.id))
        ).all()
    inbound = [row for row in rows if row.direction == "in"]
    outbound = [row for row in rows if row.direction == "out"]
    assert len(inbound) == sent
    assert len(outbound) >= sent
    assert inbound[-1].text == "hallo"
    assert any("Was möchten Sie tun?" in (row.text or "") for row in outbound)


async def test_bad_input_always_gets_a_clear_answer_and_the_dialogue_survives(
    chat: Chat, runtime: Runtime
) -> None:
    await chat.send("/start")
    for line in [
        "",
        "   ",
        "x" * 10_000,
        "/frobnicate",
        "99",
        "0",
        "-1",
        "\x00\x07\x1b[31m",
        "🙂" * 50,
    ]:
        replies = await chat.send(line)
        assert replies, f"no answer to {line[:20]!r}"
        assert all(reply.text or reply.choices for reply in replies)
    await chat.send("x" * 10_000)
    assert "zu lang" in chat.screen and len(chat.replies) == 1  # one message: hint, question
    await chat.send("/frobnicate")
    assert "/frobnicate" in chat.screen
    # Still at the consent question, and it still works.
    await chat.press("✅")
    await chat.press("Taxi")
    await chat.press("Detmold")
    assert "Was möchten Sie tun?" in chat.screen
    async with runtime.sessions() as session:
        state = await session.scalar(select(DialogueState))
        count = await session.scalar(select(func.count()).select_from(ConversationEntry))
    assert state is not None and state.flow == ""
    assert count and count > 20


async def test_stale_button_is_refused_and_the_question_repeated(chat: Chat) -> None:
    await chat.send("/start")
    agree = chat.find("Einverstanden")
    await chat.press("Einverstanden")
    replies = await chat.press_id(agree)
    assert replies[0].toast and "gilt nicht mehr" in replies[0].text
    assert len(replies) == 2 and "Lkw-Fahrer/in" in " ".join(chat.labels)  # the open question


async def test_back_returns_to_the_previous_question(chat: Chat) -> None:
    await chat.send("/start")
    await chat.press("English")
    await chat.press("I agree")
    await chat.press("Back")
    assert "Do you agree?" in chat.screen
    await chat.press("Polski")
    assert "Czy się zgadzasz?" in chat.screen


async def test_deep_link_preselects_the_role(chat: Chat, runtime: Runtime) -> None:
    await chat.send("/start taxi")
    await chat.press("English")
    await chat.press("I agree")
    assert "Which region" in chat.screen  # the role question is skipped
    await chat.press("Düsseldorf")
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "driver"))
    assert user is not None and user.role == "taxi_driver"


async def test_two_users_have_separate_dialogues(runtime: Runtime) -> None:
    alice, bob = Chat(runtime.core, "alice"), Chat(runtime.core, "bob")
    await alice.send("/start")
    await bob.send("/start")
    await alice.press("English")
    await bob.press("Polski")
    assert "Do you agree?" in alice.screen
    assert "Czy się zgadzasz?" in bob.screen


async def test_suite_runs_on_the_configured_database(runtime: Runtime) -> None:
    expected = "postgresql" if POSTGRES_URL else "sqlite"
    assert runtime.engine.dialect.name == expected
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("through_session", [False, True])
async def test_changes_to_the_person_are_stored_with_or_without_an_orm_session(
    runtime: Runtime, through_session: bool
) -> None:
    # The per-event path loads the person without the ORM and writes what changed; a
    # handler that asks for the ORM session gets the person in it, changes made before
    # included, and the session writes them instead.
    async with runtime.engine.begin() as connection:
        person = await repos.load_person(connection, "console", "mara", "mara", "mara", "pl")
        person.state.flow = "report"
    async with runtime.engine.begin() as connection:
        person = await repos.load_person(connection, "console", "mara", "mara", "mara", "de")
        assert (person.user.language, person.state.flow) == ("pl", "")  # state not written
        person.user.language = "en"
        person.state.flow = "settings"
        session = AsyncSession(bind=connection)
        if through_session:
            person.attach(session)
            person.user.role = "taxi"
            await session.flush()
        else:
            person.user.role = "taxi"
        await connection.run_sync(repos.write_event, person, [])
        await session.close()
    async with runtime.sessions() as session:
        user = await session.scalar(select(User).where(User.platform_id == "mara"))
        state = await session.scalar(select(DialogueState))
    assert user is not None and state is not None
    assert (user.language, user.role, state.flow) == ("en", "taxi", "settings")
