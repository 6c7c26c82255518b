"""Prevention tips and the silent-alarm guide, in every language."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bot.core.content_check import check_content
from bot.core.i18n import DEFAULT_CONTENT_DIR, LANGUAGES, Content
from bot.runtime import Runtime
from tests.chat import Chat

ALARM_WORDS = {
    "de": "stiller Alarm",
    "en": "silent alarm",
    "pl": "cichy alarm",
    "ro": "alarma silențioasă",
    "cs": "tichý alarm",
    "uk": "тиха тривога",
    "ru": "тихая тревога",
    "bg": "тиха аларма",
    "lt": "tylusis aliarmas",
    "tr": "sessiz alarm",
}
# Each language as the language list names it.
LANGUAGE_NAMES = {
    "de": "Deutsch",
    "en": "English",
    "pl": "Polski",
    "ro": "Română",
    "cs": "Čeština",
    "uk": "Українська",
    "ru": "Русский",
    "bg": "Български",
    "lt": "Lietuvių",
    "tr": "Türkçe",
}


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_taxi_driver_reaches_silent_alarm_guide_in_one_message(
    runtime: Runtime, lang: str
) -> None:
    chat = Chat(runtime.core, f"taxi-{lang}")
    await chat.send(ALARM_WORDS[lang])  # a fresh start, no onboarding
    guide = runtime.content.topic(lang, "silent_alarm_taxi")
    assert chat.replies[0].text.startswith(guide.cards[0][:20])
    # /alarm works the same, also as a deep link.
    await chat.send("/alarm")
    assert chat.replies[0].text.startswith(guide.cards[0][:20])
    await chat.send("/start alarm")
    assert chat.replies[0].text.startswith(guide.cards[0][:20])


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_guide_is_in_the_users_language_and_pages_through(
    runtime: Runtime, lang: str
) -> None:
    chat = Chat(runtime.core, "taxi")
    name = LANGUAGE_NAMES[lang]
    await chat.onboard(language=name, role="🚕", region="Köln")
    await chat.send("/alarm")
    topic = runtime.content.topic(lang, "silent_alarm_taxi")
    assert chat.replies[0].text == topic.cards[0]
    assert chat.replies[0].title == f"{topic.title} (1/{len(topic.cards)})"
    for page in range(1, len(topic.cards)):
        await chat.press(runtime.content.text(lang, "tips.next"))
        assert chat.replies[0].text.startswith(topic.cards[page])
    # The last card names its source and review date.
    assert "BOKraft" in chat.replies[0].text
    await chat.press(runtime.content.text(lang, "tips.previous"))
    assert chat.replies[0].text == topic.cards[-2]


async def test_police_officer_gets_the_recognition_card_first(chat: Chat, runtime: Runtime) -> None:
    await chat.onboard(role="Polizei")
    await chat.send("/alarm")
    card = runtime.content.topic("de", "silent_alarm_recognise").cards[0]
    assert chat.replies[0].text == card
    text = "\n".join(runtime.content.topic("de", "silent_alarm_recognise").cards)
    # Both signals are taught: the loud one every taxi has, and the optional silent one.
    assert "Hupe" in text and "LED" in text


@pytest.mark.parametrize(
    ("role", "first_topic"),
    [
        ("Lkw", "cargo_theft_driver"),
        ("Disposition", "gps_tracker"),
        ("Spedition", "gps_tracker"),
        ("Tankstelle", "station_robbery"),
        ("Taxi", "silent_alarm_taxi"),
        ("Polizei", "silent_alarm_recognise"),
        ("Sonstige", "silent_alarm_recognise"),
    ],
)
async def test_tips_open_the_topics_of_the_role_first(
    chat: Chat, runtime: Runtime, role: str, first_topic: str
) -> None:
    await chat.onboard(role=role)
    await chat.send("/tips")
    assert chat.labels[0] == runtime.content.topic("de", first_topic).title
    await chat.press("Alle Themen")
    titles = [runtime.content.topic("de", t).title for t in runtime.content.topic_ids]
    assert all(title in chat.labels for title in titles)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("Planen", "cargo_theft_driver"),
        ("tarpaulin", "cargo_theft_driver"),
        ("plandeka", "cargo_theft_driver"),
        ("Tankbetrug", "fuel_theft"),
    ],
)
async def test_free_text_finds_a_topic(chat: Chat, runtime: Runtime, text: str, topic: str) -> None:
    await chat.onboard()
    await chat.send(text)
    assert chat.replies[0].title.startswith(runtime.content.topic("de", topic).title)


def test_every_role_has_complete_topics_in_every_language() -> None:
    content = Content()
    roles = [oid for oid, _ in content.options("de", "roles")]
    for role in roles:
        topics = [t for t in content.topic_ids if role in content.topic("de", t).roles]
        assert topics, f"no topic for {role}"
        for lang in LANGUAGES:
            for topic_id in topics:
                topic = content.topic(lang, topic_id)
                assert topic.cards and all(len(card) <= 700 for card in topic.cards)
                assert topic.source and topic.reviewed


def test_content_check_passes_on_the_shipped_content() -> None:
    assert check_content() == []


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(DEFAULT_CONTENT_DIR, target)
    return target


def test_content_check_fails_on_a_missing_translation(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "pl" / "messages.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["menu"]["title"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert "pl: missing menu.title" in check_content(directory)


def test_content_check_fails_on_mismatched_placeholders_and_long_cards(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "en" / "messages.yaml"
    text = path.read_text(encoding="utf-8").replace("({length} characters", "({lenght} characters")
    path.write_text(text, encoding="utf-8")
    tips = directory / "de" / "tips.yaml"
    data = yaml.safe_load(tips.read_text(encoding="utf-8"))
    data["topics"]["call_110"]["cards"][0] = "x" * 800
    tips.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    problems = check_content(directory)
    assert any("en: core.too_long: placeholders" in p for p in problems)
    assert any("call_110: card 1 longer than 700" in p for p in problems)


def test_content_check_fails_on_broken_yaml(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / "de" / "report.yaml").write_text("report: [unclosed\n", encoding="utf-8")
    problems = check_content(directory)
    assert len(problems) == 1 and "not valid YAML" in problems[0]


def test_content_check_fails_on_a_menu_entry_without_a_label(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "menus.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["menus"]["taxi_driver"].append("frobnicate")
    data["menus"]["pilot"] = ["report"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    problems = check_content(directory)
    assert "menus.yaml: taxi_driver: frobnicate has no label in options.menu" in problems
    assert "menus.yaml: unknown role pilot" in problems
