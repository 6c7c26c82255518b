"""The languages of the road (issue 20): the content check proves every language complete,
in its own script and words, keeping the glossary; choosing one of ten languages; words typed
in another language or without accents. The walk through each language: test_languages_journey."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bot.core.content_check import check_content
from bot.core.i18n import DEFAULT_CONTENT_DIR, LANGUAGES, Content
from bot.core.language_check import LanguageCheck
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.models import Report
from tests.chat import Chat

# -- the content check -----------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(DEFAULT_CONTENT_DIR, target)
    return target


def _edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_a_text_left_in_german_or_english_is_found(tmp_path: Path) -> None:
    directory = _copy(tmp_path)

    def leave_behind(data: dict[str, Any]) -> None:
        data["menu"]["text"] = "Was möchten Sie tun? Bei Gefahr: {emergency} anrufen."
        data["core"]["done"] = "Please send the photo."

    _edit(directory / "pl" / "messages.yaml", leave_behind)
    problems = check_content(directory)
    assert "pl: menu.text: German words: Sie" in problems
    assert "pl: core.done: English words: the, please" in problems
    assert check_content() == []  # the shipped content has none of it


def test_letters_of_another_alphabet_are_found(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(directory / "en" / "messages.yaml", lambda d: d["form"].update(skip="⏭ Pomiń"))
    assert "en: form.skip: letters not of en: ń" in check_content(directory)


def test_the_glossary_is_kept_in_every_translation(tmp_path: Path) -> None:
    directory = _copy(tmp_path)

    def lose_terms(data: dict[str, Any]) -> None:
        data["report"]["q"]["road"] = "Which road? (e.g. A2)"
        data["report"]["thanks"] = "Thank you! Your report {reference} has reached the team."

    _edit(directory / "en" / "report.yaml", lose_terms)
    tips = directory / "en" / "tips.yaml"
    tips.write_text(
        tips.read_text(encoding="utf-8").replace("(§ 25 BOKraft)", "(by law)"), encoding="utf-8"
    )
    problems = check_content(directory)
    assert "en: report.q.road: motorway A1 missing" in problems
    assert (
        "en: report.q.road: glossary term 'motorway' not rendered as motorway" in problems
    )  # "Autobahn" in German
    assert any(p.startswith("en: report.thanks: glossary term 'partnership'") for p in problems), (
        problems
    )
    assert any(
        "silent_alarm_taxi: card 2: fixed term '§ 25 BOKraft' missing" in p for p in problems
    )


def test_only_languages_without_coordinator_texts_may_leave_them_out(tmp_path: Path) -> None:
    directory = _copy(tmp_path)

    def drop(data: dict[str, Any]) -> None:
        del data["triage"]["usage"]  # a coordinator's text
        del data["report"]["sent_title"]  # a reporter's text

    _edit(directory / "pl" / "report.yaml", drop)
    problems = check_content(directory)
    assert "pl: missing triage.usage" in problems and "pl: missing report.sent_title" in problems

    _edit(
        directory / "languages.yaml",
        lambda d: d["languages"]["pl"].update(coordinator_texts=False),
    )
    problems = check_content(directory)
    assert "pl: missing triage.usage" not in problems
    assert "pl: missing report.sent_title" in problems
    content = Content(directory)
    assert content.text("pl", "triage.usage") == content.text("de", "triage.usage")


def test_a_review_status_says_what_happened_and_nothing_else(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    languages = directory / "languages.yaml"
    _edit(languages, lambda d: d["languages"]["en"].update(review="native speaker, 2026-12-01"))
    assert check_content(directory) == []
    _edit(languages, lambda d: d["languages"]["en"].update(review="checked"))
    assert any(p.startswith("languages.yaml: en: review:") for p in check_content(directory))
    _edit(languages, lambda d: d["languages"]["en"].update(review="reference"))
    assert "languages.yaml: en: only de is the reference" in check_content(directory)


def test_every_language_file_names_every_language_alike(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(
        directory / "en" / "messages.yaml",
        lambda d: d["options"]["languages"].update(de="🇩🇪 German"),
    )
    assert "en: options.languages must name each language as de" in check_content(directory)


def test_names_commands_and_references_say_nothing_about_the_language() -> None:
    check = LanguageCheck(Content())
    assert check.problems("en", "Rastanlage Ohligser Heide on the A3 towards Köln") == []
    assert check.problems("de", "Meldung SP-2026-000001 · /report · {emergency}") == []
    assert (
        check.problems("pl", "Napisała: Die Männer sind weg", exempt=["Die Männer sind weg"]) == []
    )


# -- choosing the language ---------------------------------------------------------------------


def names(runtime: Runtime, *codes: str) -> list[str]:
    """The languages as the language list names them (each in itself)."""
    labels = dict(runtime.content.options("de", "languages"))
    return [labels[code] for code in codes]


async def test_the_first_screen_stays_short_and_every_language_is_two_taps_away(
    runtime: Runtime,
) -> None:
    chat = Chat(runtime.core, "driver")
    await chat.send("/start")  # the terminal greets in German, the deployment's default
    assert chat.labels == [
        "✅ Einverstanden", "✖️ Nein danke", *names(runtime, "en", "pl"), "🌐 Sprachen",
        "✖️ Abbrechen",
    ]  # fmt: skip
    await chat.press("🌐")
    others = [code for code in LANGUAGES if code != "de"]
    assert chat.labels == names(runtime, *others)  # nothing else on that screen
    await chat.send(str(len(others)))  # a number typed picks from the list
    last = others[-1]
    privacy = runtime.content.text(last, "onboarding.privacy", operator="", contact="", days=0)
    assert privacy.splitlines()[-1] in chat.screen  # the consent question, in that language
    assert "🌐" in " ".join(chat.labels)
    async with runtime.sessions() as session:
        user = await repos.get_user(session, "console", "driver")
    assert user is not None and user.language == last and user.consent_at is None


async def test_a_language_picked_under_a_guide_shows_the_same_card_again(
    runtime: Runtime,
) -> None:
    chat = Chat(runtime.core, "taxi")
    await chat.send("/start alarm")
    await chat.press("➡️")  # the second card
    await chat.press("🌐")
    await chat.press(names(runtime, "pl")[0])
    card = runtime.content.topic("pl", "silent_alarm_taxi").cards[1]
    assert chat.replies[0].text == card


async def test_settings_offer_every_language(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "driver")
    await chat.onboard()
    await chat.send("/settings")
    await chat.press("Sprache")
    assert chat.labels[: len(LANGUAGES)] == names(runtime, *LANGUAGES)
    await chat.press(names(runtime, LANGUAGES[-1])[0])
    async with runtime.sessions() as session:
        user = await repos.get_user(session, "console", "driver")
    assert user is not None and user.language == LANGUAGES[-1]


# -- words typed -------------------------------------------------------------------------------


async def test_a_word_of_several_languages_keeps_the_persons_own(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "taxi", language_hint="pl")
    await chat.send("alarm")  # German, English and Polish alike; Telegram said Polish
    assert chat.replies[0].text == runtime.content.topic("pl", "silent_alarm_taxi").cards[0]


async def test_words_typed_without_accents_are_understood(runtime: Runtime) -> None:
    chat = Chat(runtime.core, "driver")
    await chat.onboard(language="Polski", role="🚚", region="Detmold")
    await chat.send("Ludzie kraza przy ciezarowkach")  # "krążą", typed on a German phone
    assert "110" in chat.screen  # the report's first question
    for line in ("2", "/location 51.9 8.9", "/skip", "2"):
        await chat.send(line)
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.category == "person"
    assert report.answers["description"] == "Ludzie kraza przy ciezarowkach"


# -- the README's language table -------------------------------------------------------------


def test_the_readme_language_table_says_what_the_content_says() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Languages\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| `(\w+)` \| (\w+) \| ([\w']+) \| (.+?) \|$", section, re.M)
    content = Content()
    names = dict(content.options("de", "languages"))
    assert [code for _, code, *_ in rows] == list(LANGUAGES)
    for name, code, script, coordinator_texts, review in rows:
        language = content.languages[code]
        assert name.startswith(names[code].split(" ", 1)[1]), name
        assert script.lower() == language.script
        assert (coordinator_texts == "yes") == language.coordinator_texts
        assert review == language.review, code
