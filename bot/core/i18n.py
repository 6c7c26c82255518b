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
from babel.dates import format_date, format_skeleton, format_time

LANGUAGES = ("de", "en", "pl", "ro", "bg", "lt", "cs", "uk", "ru", "tr")
# Formatting locales: unambiguous, European day-month order everywhere ("5 Nov 2026, 09:10";
# plain "en" would give the US "11/5/26, 9:10 AM").
LOCALES = {
    "de": "de_DE",
    "en": "en_GB",
    "pl": "pl_PL",
    "ro": "ro_RO",
    "bg": "bg_BG",
    "lt": "lt_LT",
    "cs": "cs_CZ",
    "uk": "uk_UA",
    "ru": "ru_RU",
    "tr": "tr_TR",
}
# Where the locale's medium date is not day, month name, year (Lithuanian "2026-11-05",
# Czech "5. 11. 2026", Bulgarian "5.11.2026 г."), the same order spelled out.
DATE_PATTERNS: dict[str, str] = {"cs": "d. MMMM y", "bg": "d MMMM y 'г'.", "lt": "d MMMM y 'm'."}


def _default_content_dir() -> Path:
    """content/ as the wheel installs it (bot/content), else the checkout's top-level one."""
    here = Path(__file__).resolve()
    installed = here.parents[1] / "content"
    return installed if installed.is_dir() else here.parents[2] / "content"


DEFAULT_CONTENT_DIR = _default_content_dir()


class ContentError(Exception):
    """A content file is missing, unreadable or incomplete."""


@dataclass(frozen=True, slots=True)
class Language:
    """What content/languages.yaml says about one language."""

    code: str
    name: str
    script: str
    letters: str
    review: str
    coordinator_texts: bool


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


def load_yaml(path: Path) -> Any:
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
                messages = load_yaml(path)
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
            tips = load_yaml(self.directory / lang / "tips.yaml")
            if not isinstance(tips, dict) or not isinstance(tips.get("topics"), dict):
                raise ContentError(f"{lang}/tips.yaml: expected 'topics:' mapping")
            self.tips[lang] = tips["topics"]
        meta = load_yaml(self.directory / "topics.yaml")
        if not isinstance(meta, dict) or not isinstance(meta.get("topics"), dict):
            raise ContentError("topics.yaml: expected 'topics:' mapping")
        self.topic_meta: dict[str, dict[str, Any]] = meta["topics"]
        menus = load_yaml(self.directory / "menus.yaml")
        if not isinstance(menus, dict) or not isinstance(menus.get("menus"), dict):
            raise ContentError("menus.yaml: expected 'menus:' mapping")
        self.menus: dict[str, list[str]] = {
            str(role): [str(entry) for entry in entries] for role, entries in menus["menus"].items()
        }
        self.languages, self.coordinator_keys, self.telltales = _load_languages(self.directory)
        self._keywords: dict[str, list[tuple[str, str]]] = {}
        self._topics: dict[tuple[str, str], Topic] = {}

    def language(self, lang: str | None) -> str:
        return lang if lang in LANGUAGES else self.default_language

    def is_coordinator_key(self, key: str) -> bool:
        """Whether only coordinators and admins read the text `key` (or option list)."""
        return any(
            key.startswith(entry) if entry.endswith(".") else key == entry
            for entry in self.coordinator_keys
        )

    @property
    def coordinator_languages(self) -> list[str]:
        """The languages that have the coordinators' texts (the console offers these)."""
        return [
            code
            for code in LANGUAGES
            if code in self.languages and self.languages[code].coordinator_texts
        ]

    def coordinator_language(self, lang: str | None) -> str:
        """The language a coordinator works in: theirs when it has the coordinators' texts,
        else the deployment's default."""
        found = self.languages.get(self.language(lang))
        return (
            found.code if found is not None and found.coordinator_texts else self.default_language
        )

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
        if raw is None:
            raw = self.messages[self.default_language].get(f"options.{key}")
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
        found = self._keywords.get(key)
        if found is None:
            found = self._keywords[key] = [
                (lang, str(word).lower())
                for lang in LANGUAGES
                for word in self.messages[lang].get(f"intents.{key}") or []
            ]
        return found

    @cached_property
    def topic_ids(self) -> list[str]:
        return list(self.topic_meta)

    def topic(self, lang: str, topic_id: str) -> Topic:
        key = (self.language(lang), topic_id)
        found = self._topics.get(key)
        if found is None:
            found = self._topics[key] = self._topic(*key)
        return found

    def _topic(self, lang: str, topic_id: str) -> Topic:
        text = self.tips[lang][topic_id]
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
        lang = self.language(lang)
        locale = LOCALES[lang]
        pattern = DATE_PATTERNS.get(lang)
        if pattern is None:
            day = format_skeleton("yMMMd", moment, tzinfo=tz, locale=locale)
        else:
            day = format_date(moment.astimezone(tz), pattern, locale=locale)
        return f"{day}, {format_time(moment, 'HH:mm', tzinfo=tz, locale=locale)}"

    def format_date_text(self, lang: str, iso_day: str) -> str:
        """An ISO date from content metadata, in the reader's format."""
        try:
            return self.format_date(lang, date.fromisoformat(iso_day))
        except ValueError:
            return iso_day

    def format_date(self, lang: str, day: date) -> str:
        lang = self.language(lang)
        pattern = DATE_PATTERNS.get(lang)
        if pattern is not None:
            return format_date(day, pattern, locale=LOCALES[lang])
        return format_skeleton("yMMMd", day, locale=LOCALES[lang])


def _load_languages(
    directory: Path,
) -> tuple[dict[str, Language], tuple[str, ...], dict[str, tuple[str, ...]]]:
    """content/languages.yaml: the languages, the coordinators' keys, the tell-tale words."""
    raw = load_yaml(directory / "languages.yaml")
    if not isinstance(raw, dict) or not isinstance(raw.get("languages"), dict):
        raise ContentError("languages.yaml: expected 'languages:' mapping")
    languages = {}
    for code, entry in raw["languages"].items():
        if not isinstance(entry, dict):
            raise ContentError(f"languages.yaml: {code}: expected a mapping")
        languages[str(code)] = Language(
            code=str(code),
            name=str(entry.get("name", "")),
            script=str(entry.get("script", "")),
            letters=str(entry.get("letters") or ""),
            review=str(entry.get("review", "")),
            coordinator_texts=entry.get("coordinator_texts") is True,
        )
    keys = tuple(str(key) for key in raw.get("coordinator_keys") or [])
    telltales = {
        str(lang): tuple(str(word) for word in words)
        for lang, words in (raw.get("telltales") or {}).items()
    }
    return languages, keys, telltales


def negotiate_language(hint: str, default: str = "de") -> str:
    """Pick one of the bot's languages for a platform language hint such as 'pl-PL'; else
    the default."""
    if not hint:
        return default
    found = negotiate_locale([hint.replace("_", "-")], list(LANGUAGES), sep="-")
    return found or default
