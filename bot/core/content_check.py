"""The content check: every language complete, every text within the platforms' limits."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.i18n import LANGUAGES, Content, ContentError, placeholders

REFERENCE = "de"
MESSAGE_LIMIT = 4096  # Telegram's limit for one message
CARD_LIMIT = 700  # one phone screen
LABEL_LIMIT = 48  # a button label that still reads on a phone
TITLE_LIMIT = 40
CALLBACK_LIMIT = 64  # Telegram's callback_data limit in bytes
ID_PATTERN = re.compile(r"^[a-z0-9_]{1,24}$")
# The longest prefix the form engine puts before an option id: "<form>:<step>:".
LONGEST_PREFIX = "rep:vehicle_country:"


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
    problems: list[str] = []
    problems += _check_messages(content)
    problems += _check_topics(content)
    problems += _check_menus(content)
    return problems


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


def _check_messages(content: Content) -> list[str]:
    problems = []
    reference = content.messages[REFERENCE]
    roles = (
        {oid for oid, _ in content.options(REFERENCE, "roles")}
        if "options.roles" in (reference)
        else set()
    )
    for lang in LANGUAGES:
        messages = content.messages[lang]
        for key in sorted(set(reference) - set(messages)):
            problems.append(f"{lang}: missing {key}")
        for key in sorted(set(messages) - set(reference)):
            problems.append(f"{lang}: {key} is not in the {REFERENCE} reference")
        for key in sorted(set(reference) & set(messages)):
            problems += _compare(lang, key, reference[key], messages[key])
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


def _check_text(where: str, reference: str, value: str) -> list[str]:
    problems = []
    if not value.strip():
        problems.append(f"{where}: empty text")
    if len(value) > MESSAGE_LIMIT:
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


def _check_topics(content: Content) -> list[str]:
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
