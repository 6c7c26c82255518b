"""The content check: every language complete, in its own language and script, keeping the
glossary, and every text within the platforms' limits."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.i18n import LANGUAGES, LOCALES, Content, ContentError, load_yaml, placeholders
from bot.core.language_check import LanguageCheck

REFERENCE = "de"
# Telegram's limit for one message, counted in UTF-16 code units as Telegram counts (an
# emoji is two). Matrix allows 64 KiB per event: far more than this, in any script.
MESSAGE_LIMIT = 4096
CARD_LIMIT = 700  # one phone screen
LABEL_LIMIT = 48  # a button label that still reads on a phone
BUTTON_LIMIT = 64  # a button's text with its values filled in (a reference, a number)
TITLE_LIMIT = 40
COMMAND_LIMIT = 256  # Telegram's limit for a command's description in the menu
CALLBACK_LIMIT = 64  # Telegram's callback_data limit in bytes
ID_PATTERN = re.compile(r"^[a-z0-9_]{1,24}$")
# The longest prefix the form engine puts before an option id: "<form>:<step>:".
LONGEST_PREFIX = "rep:vehicle_country:"
REVIEW = re.compile(r"^(reference|unreviewed|native speaker, \d{4}-\d{2}-\d{2})$")
# Texts shown on buttons (besides the option lists, checked as labels).
BUTTONS = (
    "form.done", "form.unknown", "form.skip", "form.thats_all", "form.back", "form.cancel",
    "form.edit", "form.to_summary", "form.discard", "form.keep", "menu.open",
    "menu.back_to_menu", "alerts.turn_off", "alerts.turn_on", "alerts.change_topics",
    "alerts.change_regions", "alerts.understood", "alerts.confirm", "alerts.cancel_one",
    "alerts.reminder_continue", "alerts.reminder_discard", "alerts.new", "alerts.status_one",
    "alerts.add_language", "report.my_reports", "report.new", "report.add_details",
    "report.add_details_to", "report.send_details", "triage.reply", "tips.all", "tips.topics",
    "tips.next", "tips.previous", "tips.recognise", "tips.for_taxi", "privacy.yes_delete",
    "privacy.keep", "keyboard.share_location", "onboarding.more_languages",
)  # fmt: skip
# Texts written in several languages on purpose: the question for the language speaks to
# someone who may not read the screen's language.
MULTILINGUAL = ("onboarding.language",)
# A filled-in value is at most this long: "SP-2026-000001", an alert's number.
VALUE_LENGTH = 14


class LanguageEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2)
    script: str = Field(pattern="^(latin|cyrillic)$")
    letters: str = ""
    review: str = Field(pattern=REVIEW.pattern)
    coordinator_texts: bool


class TopicMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[str] = Field(min_length=1)
    source: str = Field(min_length=3)
    reviewed: date


class TopicText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=TITLE_LIMIT)
    keywords: list[str] = Field(min_length=1)
    cards: list[str] = Field(min_length=1)


def check_content(directory: Path | None = None) -> list[str]:
    """All problems found, as plain lines; empty when the content is complete."""
    try:
        content = Content(directory)
    except ContentError as exc:
        return [str(exc)]
    except (KeyError, TypeError) as exc:
        return [f"content structure: {exc}"]
    problems = _check_languages(content)
    if problems:
        return problems
    try:
        check = LanguageCheck(content)
    except ContentError as exc:
        return [str(exc)]
    problems += _check_messages(content, check)
    problems += _check_topics(content, check)
    problems += _check_menus(content)
    return problems


def _check_languages(content: Content) -> list[str]:
    """languages.yaml names the bot's languages in order, each honestly reviewed; every
    language file lists them all in the language list, under the same names."""
    problems = []
    raw = load_languages(content)
    if list(raw) != list(LANGUAGES):
        problems.append(f"languages.yaml: {list(raw)} differ from the bot's {list(LANGUAGES)}")
    for code, entry in raw.items():
        try:
            parsed = LanguageEntry.model_validate(entry)
        except ValidationError as exc:
            problems.append(f"languages.yaml: {code}: {_first(exc)}")
            continue
        if (parsed.review == "reference") != (code == REFERENCE):
            problems.append(f"languages.yaml: {code}: only {REFERENCE} is the reference")
        if code not in LOCALES:
            problems.append(f"languages.yaml: {code}: no formatting locale")
    reference = content.languages.get(REFERENCE)
    if reference is None or not reference.coordinator_texts:
        problems.append(f"languages.yaml: {REFERENCE} must have the coordinators' texts")
    names = content.messages[REFERENCE].get("options.languages") or {}
    if list(names) != list(LANGUAGES):
        problems.append(f"{REFERENCE}: options.languages must list {', '.join(LANGUAGES)}")
    for lang in LANGUAGES:
        if lang != REFERENCE and content.messages[lang].get("options.languages") != names:
            problems.append(f"{lang}: options.languages must name each language as {REFERENCE}")
    return problems


def load_languages(content: Content) -> dict[str, Any]:
    """languages.yaml's entries as written (the Content keeps them parsed)."""
    raw = load_yaml(content.directory / "languages.yaml")
    return dict(raw.get("languages") or {}) if isinstance(raw, dict) else {}


def _check_menus(content: Content) -> list[str]:
    """Every menu names a known role (or default/coordinator) and labelled entries."""
    problems = []
    roles = {oid for oid, _ in content.options(REFERENCE, "roles")} | {"default", "coordinator"}
    labels = {oid for oid, _ in content.options(REFERENCE, "menu")}
    if "default" not in content.menus:
        problems.append("menus.yaml: no default menu")
    for role, entries in content.menus.items():
        if role not in roles:
            problems.append(f"menus.yaml: unknown role {role}")
        for entry in entries:
            if entry not in labels:
                problems.append(f"menus.yaml: {role}: {entry} has no label in options.menu")
    return problems


def _check_messages(content: Content, check: LanguageCheck) -> list[str]:
    problems = []
    reference = content.messages[REFERENCE]
    roles = (
        {oid for oid, _ in content.options(REFERENCE, "roles")}
        if "options.roles" in (reference)
        else set()
    )
    for lang in LANGUAGES:
        messages = content.messages[lang]
        own_coordinator_texts = content.languages[lang].coordinator_texts
        for key in sorted(set(reference) - set(messages)):
            if own_coordinator_texts or not content.is_coordinator_key(key):
                problems.append(f"{lang}: missing {key}")
        for key in sorted(set(messages) - set(reference)):
            problems.append(f"{lang}: {key} is not in the {REFERENCE} reference")
        for key in sorted(set(reference) & set(messages)):
            problems += _compare(lang, key, reference[key], messages[key])
            problems += _in_language(check, lang, key, reference[key], messages[key])
    for lang in LANGUAGES:
        role_ids = {oid for oid, _ in content.options(lang, "roles")}
        if role_ids != roles:
            problems.append(f"{lang}: roles differ from {REFERENCE}")
    return problems


def _compare(lang: str, key: str, reference: Any, value: Any) -> list[str]:
    where = f"{lang}: {key}"
    if type(reference) is not type(value):
        return [f"{where}: expected {type(reference).__name__}, found {type(value).__name__}"]
    if isinstance(value, str):
        return _check_text(where, reference, value)
    if isinstance(value, dict):
        problems = []
        if list(value) != list(reference):
            problems.append(f"{where}: option ids or their order differ from {REFERENCE}")
        for oid, label in value.items():
            oid = str(oid)
            if not ID_PATTERN.match(oid):
                problems.append(f"{where}.{oid}: option id must be a-z, 0-9, _ (at most 24)")
            if len(f"{LONGEST_PREFIX}{oid}".encode()) > CALLBACK_LIMIT:
                problems.append(f"{where}.{oid}: button data would exceed 64 bytes")
            if not isinstance(label, str) or not label.strip():
                problems.append(f"{where}.{oid}: empty label")
            elif len(label) > LABEL_LIMIT:
                problems.append(f"{where}.{oid}: label longer than {LABEL_LIMIT} characters")
        return problems
    if isinstance(value, list):
        if not value or not all(isinstance(item, str) and item.strip() for item in value):
            return [f"{where}: expected a non-empty list of words"]
        return []
    return [f"{where}: unexpected value {value!r}"]


def _in_language(
    check: LanguageCheck, lang: str, key: str, reference: Any, value: Any
) -> list[str]:
    """A text (or each label of an option list) in `lang`'s own words, keeping the glossary."""
    if key.startswith("intents.") or key in MULTILINGUAL:
        return []  # words people type, in any language; or several languages on purpose
    if isinstance(value, dict) and isinstance(reference, dict):
        pairs = [(f"{key}.{oid}", str(reference.get(oid, "")), str(v)) for oid, v in value.items()]
    elif isinstance(value, str) and isinstance(reference, str):
        pairs = [(key, reference, value)]
    else:
        return []
    problems = []
    for where, original, text in pairs:
        found = check.problems(lang, text) + check.glossary.problems(lang, original, text)
        problems += [f"{lang}: {where}: {problem}" for problem in found]
        if where in BUTTONS and _filled_length(text) > BUTTON_LIMIT:
            problems.append(f"{lang}: {where}: button text longer than {BUTTON_LIMIT} characters")
        if where.startswith("commands.") and not 0 < len(text) <= COMMAND_LIMIT:
            problems.append(
                f"{lang}: {where}: a command's description is 1 to {COMMAND_LIMIT} long"
            )
    return problems


def _filled_length(text: str) -> int:
    return len(re.sub(r"\{[^{}]*\}", "x" * VALUE_LENGTH, text))


def utf16_length(text: str) -> int:
    """A text's length as Telegram counts it (UTF-16 code units: an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _check_text(where: str, reference: str, value: str) -> list[str]:
    problems = []
    if not value.strip():
        problems.append(f"{where}: empty text")
    if utf16_length(value) > MESSAGE_LIMIT:
        problems.append(f"{where}: longer than {MESSAGE_LIMIT} characters")
    try:
        if placeholders(value) != placeholders(reference):
            problems.append(
                f"{where}: placeholders {sorted(placeholders(value))} differ from "
                f"{REFERENCE} {sorted(placeholders(reference))}"
            )
    except ContentError as exc:
        problems.append(f"{where}: {exc}")
    return problems


def _check_topics(content: Content, check: LanguageCheck) -> list[str]:
    problems = []
    roles = {oid for oid, _ in content.options(REFERENCE, "roles")}
    for topic_id, meta in content.topic_meta.items():
        if not ID_PATTERN.match(str(topic_id)):
            problems.append(f"topics.yaml: {topic_id}: id must be a-z, 0-9, _ (at most 24)")
        try:
            parsed = TopicMeta.model_validate(meta)
        except ValidationError as exc:
            problems.append(f"topics.yaml: {topic_id}: {_first(exc)}")
            continue
        for role in set(parsed.roles) - roles:
            problems.append(f"topics.yaml: {topic_id}: unknown role {role}")
    cards_per_topic: dict[str, int] = {}
    for lang in LANGUAGES:
        tips = content.tips[lang]
        for topic_id in sorted(set(content.topic_meta) - set(tips)):
            problems.append(f"{lang}/tips.yaml: missing topic {topic_id}")
        for topic_id in sorted(set(tips) - set(content.topic_meta)):
            problems.append(f"{lang}/tips.yaml: topic {topic_id} is not in topics.yaml")
        for topic_id, text in tips.items():
            where = f"{lang}/tips.yaml: {topic_id}"
            try:
                parsed_text = TopicText.model_validate(text)
            except ValidationError as exc:
                problems.append(f"{where}: {_first(exc)}")
                continue
            reference = content.tips[REFERENCE].get(topic_id) or {}
            originals = [str(reference.get("title", "")), *map(str, reference.get("cards") or [])]
            texts = [parsed_text.title, *parsed_text.cards]
            for index, (original, text) in enumerate(zip(originals, texts, strict=False)):
                part = f"card {index}" if index else "title"
                found = check.problems(lang, text) + check.glossary.problems(lang, original, text)
                problems += [f"{where}: {part}: {problem}" for problem in found]
            for index, card in enumerate(parsed_text.cards, 1):
                if len(card.strip()) > CARD_LIMIT:
                    problems.append(f"{where}: card {index} longer than {CARD_LIMIT} characters")
            expected = cards_per_topic.setdefault(topic_id, len(parsed_text.cards))
            if len(parsed_text.cards) != expected:
                problems.append(
                    f"{where}: {len(parsed_text.cards)} cards, {REFERENCE} has {expected}"
                )
    return problems


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
