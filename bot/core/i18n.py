"""Words from content/: texts, option lists, keywords and tips, per language."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from babel import negotiate_locale
from babel.dates import format_skeleton, format_time

LANGUAGES = ("de", "en", "pl")
# Formatting locales: unambiguous, European day-month order everywhere ("5 Nov 2026, 09:10";
# plain "en" would give the US "11/5/26, 9:10 AM").
LOCALES = {"de": "de_DE", "en": "en_GB", "pl": "pl_PL"}


def _default_content_dir() -> Path:
    """content/ as the wheel installs it (bot/content), else the checkout's top-level one."""
    here = Path(__file__).resolve()
    installed = here.parents[1] / "content"
    return installed if installed.is_dir() else here.parents[2] / "content"


DEFAULT_CONTENT_DIR = _default_content_dir()


class ContentError(Exception):
    """A content file is missing, unreadable or incomplete."""


@dataclass(frozen=True, slots=True)
class Topic:
    """A prevention topic in one language."""

    id: str
    title: str
    cards: tuple[str, ...]
    keywords: tuple[str, ...]
    roles: tuple[str, ...]
    source: str
    reviewed: str


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and not _is_option_map(prefix):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, into)
    else:
        into[prefix] = value


def _is_option_map(key: str) -> bool:
    # Option maps (id -> label) are kept whole: their order is the order shown.
    return key.startswith("options.")


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ContentError(f"{path}: file missing") from exc
    except yaml.YAMLError as exc:
        raise ContentError(f"{path}: not valid YAML: {exc}") from exc


def placeholders(text: str) -> set[str]:
    """The {names} a text expects."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError as exc:
        raise ContentError(f"broken placeholder in {text[:40]!r}: {exc}") from exc


class Content:
    """All words of the bot, loaded once from a content directory."""

    def __init__(self, directory: Path | None = None, default_language: str = "de") -> None:
        self.directory = directory or DEFAULT_CONTENT_DIR
        self.default_language = default_language
        self.messages: dict[str, dict[str, Any]] = {}
        self.tips: dict[str, dict[str, Any]] = {}
        for lang in LANGUAGES:
            flat: dict[str, Any] = {}
            for path in sorted((self.directory / lang).glob("*.yaml")):
                if path.name == "tips.yaml":
                    continue
                messages = _load_yaml(path)
                if not isinstance(messages, dict):
                    raise ContentError(f"{lang}/{path.name}: expected a mapping")
                part: dict[str, Any] = {}
                _flatten("", messages, part)
                repeated = set(part) & set(flat)
                if repeated:
                    raise ContentError(f"{lang}/{path.name}: repeats {sorted(repeated)[0]}")
                flat.update(part)
            if not flat:
                raise ContentError(f"{self.directory / lang}: no texts found")
            self.messages[lang] = flat
            tips = _load_yaml(self.directory / lang / "tips.yaml")
            if not isinstance(tips, dict) or not isinstance(tips.get("topics"), dict):
                raise ContentError(f"{lang}/tips.yaml: expected 'topics:' mapping")
            self.tips[lang] = tips["topics"]
        meta = _load_yaml(self.directory / "topics.yaml")
        if not isinstance(meta, dict) or not isinstance(meta.get("topics"), dict):
            raise ContentError("topics.yaml: expected 'topics:' mapping")
        self.topic_meta: dict[str, dict[str, Any]] = meta["topics"]
        menus = _load_yaml(self.directory / "menus.yaml")
        if not isinstance(menus, dict) or not isinstance(menus.get("menus"), dict):
            raise ContentError("menus.yaml: expected 'menus:' mapping")
        self.menus: dict[str, list[str]] = {
            str(role): [str(entry) for entry in entries] for role, entries in menus["menus"].items()
        }

    def language(self, lang: str | None) -> str:
        return lang if lang in LANGUAGES else self.default_language

    def text(self, lang: str, key: str, **values: Any) -> str:
        """The text `key` in `lang`, with {placeholders} filled in."""
        raw = self.messages[self.language(lang)].get(key)
        if raw is None:
            raw = self.messages[self.default_language].get(key)
        if not isinstance(raw, str):
            raise ContentError(f"no text {key!r}")
        return raw.format(**values) if values else raw

    def options(self, lang: str, key: str) -> list[tuple[str, str]]:
        """An ordered option list (id, label) such as roles, regions or categories."""
        raw = self.messages[self.language(lang)].get(f"options.{key}")
        if not isinstance(raw, dict):
            raise ContentError(f"no option list {key!r}")
        return [(str(k), str(v)) for k, v in raw.items()]

    def label(self, lang: str, key: str, option_id: str) -> str:
        return dict(self.options(lang, key)).get(option_id, option_id)

    def menu(self, role: str) -> list[str]:
        """The menu entries (commands) for a role, in order."""
        return self.menus.get(role) or self.menus.get("default", [])

    def keywords(self, key: str) -> list[tuple[str, str]]:
        """(language, keyword) pairs of intent `key`, all languages."""
        found: list[tuple[str, str]] = []
        for lang in LANGUAGES:
            words = self.messages[lang].get(f"intents.{key}") or []
            found.extend((lang, str(word).lower()) for word in words)
        return found

    @cached_property
    def topic_ids(self) -> list[str]:
        return list(self.topic_meta)

    def topic(self, lang: str, topic_id: str) -> Topic:
        text = self.tips[self.language(lang)][topic_id]
        meta = self.topic_meta[topic_id]
        return Topic(
            id=topic_id,
            title=str(text["title"]),
            cards=tuple(str(card).strip() for card in text["cards"]),
            keywords=tuple(str(k).lower() for k in text.get("keywords", [])),
            roles=tuple(meta.get("roles", [])),
            source=str(meta.get("source", "")),
            reviewed=str(meta.get("reviewed", "")),
        )

    def format_when(self, lang: str, moment: datetime, tz: ZoneInfo) -> str:
        """A date and time with the month's name and a 24-hour clock: "5 Nov 2026, 09:10"."""
        locale = LOCALES[self.language(lang)]
        day = format_skeleton("yMMMd", moment, tzinfo=tz, locale=locale)
        return f"{day}, {format_time(moment, 'HH:mm', tzinfo=tz, locale=locale)}"

    def format_date_text(self, lang: str, iso_day: str) -> str:
        """An ISO date from content metadata, in the reader's format."""
        try:
            return self.format_date(lang, date.fromisoformat(iso_day))
        except ValueError:
            return iso_day

    def format_date(self, lang: str, day: date) -> str:
        return format_skeleton("yMMMd", day, locale=LOCALES[self.language(lang)])


def negotiate_language(hint: str, default: str = "de") -> str:
    """Pick de/en/pl for a platform language hint such as 'pl-PL'; else the default."""
    if not hint:
        return default
    found = negotiate_locale([hint.replace("_", "-")], list(LANGUAGES), sep="-")
    return found or default
