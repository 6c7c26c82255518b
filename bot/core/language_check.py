"""Whether a text is written in the language it belongs to, and keeps the glossary.

Three signs of a text left in another language: letters outside the language's alphabet
(German "ß" in a Czech text, Russian "ы" in a Ukrainian one), too few letters of its script
(an English sentence in a Bulgarian text), and the tell-tale words of German and English
("und", "bitte", "the", "please"). Names, fixed terms, placeholders, commands, references
and motorway names say nothing about a text's language and are left out first.

The content check runs this on every text of every language; the tests that walk a chat
run it on every screen the person sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bot.core.i18n import Content, ContentError, load_yaml

# Share of a Cyrillic-script text's letters that must be Cyrillic.
CYRILLIC_SHARE = 0.9
# What is no word of any language: {placeholders}, /commands and !commands, references
# such as SP-2026-000001, e-mail and web addresses.
_NOT_WORDS = re.compile(
    r"\{[^{}]*\}|(?<![\w/])[/!][a-z_]+|[A-Z]{1,5}-\d{4}-\d{6}|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|\b[\w.-]+\.(?:de|nrw|org|com|eu)\b"
)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Glossary:
    """content/glossary.yaml: fixed terms, motorway names, names, terms per language."""

    fixed: tuple[str, ...]
    motorways: re.Pattern[str]
    names: tuple[str, ...]
    terms: dict[str, dict[str, tuple[str, ...]]]

    @classmethod
    def load(cls, content: Content) -> Glossary:
        raw = load_yaml(content.directory / "glossary.yaml")
        if not isinstance(raw, dict):
            raise ContentError("glossary.yaml: expected a mapping")
        try:
            motorways = re.compile(rf"(?<!\w)(?:{raw.get('motorways') or '$^'})(?!\w)")
        except re.error as exc:
            raise ContentError(f"glossary.yaml: motorways: {exc}") from exc
        terms = {
            str(term): {
                str(lang): tuple(str(s).casefold() for s in stems) for lang, stems in by.items()
            }
            for term, by in (raw.get("terms") or {}).items()
        }
        return cls(
            fixed=tuple(str(term) for term in raw.get("fixed") or []),
            motorways=motorways,
            names=tuple(str(name) for name in raw.get("names") or []),
            terms=terms,
        )

    def problems(self, lang: str, reference: str, text: str) -> list[str]:
        """What `text` (in `lang`) loses of the glossary against the German `reference`."""
        found = [f"fixed term {term!r} missing" for term in self.fixed
                 if term in reference and term not in text]  # fmt: skip
        missing = set(self.motorways.findall(reference)) - set(self.motorways.findall(text))
        found += [f"motorway {name} missing" for name in sorted(missing)]
        folded_reference, folded = reference.casefold(), text.casefold()
        for term, stems in self.terms.items():
            own = stems.get(lang)
            if own is None or lang == "de":
                continue
            if any(s in folded_reference for s in stems.get("de", ())) and not any(
                s in folded for s in own
            ):
                found.append(f"glossary term {term!r} not rendered as {' / '.join(own)}")
        return found


class LanguageCheck:
    """The script, alphabet and tell-tale check of every language of a content set."""

    def __init__(self, content: Content, glossary: Glossary | None = None) -> None:
        self.content = content
        self.glossary = glossary or Glossary.load(content)

    @cached_property
    def _exempt(self) -> re.Pattern[str]:
        """Names, fixed terms and the languages' own names (the language list names each
        language in itself, on every screen)."""
        own_names = {
            label.split(" ", 1)[-1]
            for lang in self.content.messages
            for label in (self.content.messages[lang].get("options.languages") or {}).values()
        }
        return _alternation([*self.glossary.names, *self.glossary.fixed, *own_names], words=True)

    def problems(self, lang: str, text: str, exempt: Iterable[str] = ()) -> list[str]:
        """Why `text` does not read as `lang` (empty when it does). `exempt`: strings that
        are not the bot's words (what a person typed, a coordinator's alert text)."""
        language = self.content.languages.get(lang)
        if language is None:
            return [f"no language {lang!r} in languages.yaml"]
        stripped = _strip(text, self._exempt, self.glossary.motorways, exempt)
        letters = [ch for ch in stripped if _is_letter(ch)]
        if not letters:
            return []
        found: list[str] = []
        own = set(language.letters)
        if language.script == "cyrillic":
            cyrillic = [ch for ch in letters if _is_cyrillic(ch)]
            strange = sorted({ch for ch in cyrillic if ch.lower() not in own})
            share = len(cyrillic) / len(letters)
            if share < CYRILLIC_SHARE:
                latin = " ".join(dict.fromkeys(w for w in _WORD.findall(stripped) if _latin(w)))
                found.append(f"only {share:.0%} Cyrillic letters ({latin[:60]})")
        else:
            strange = sorted(
                {ch for ch in letters if not ch.lower()[0].isascii() and ch.lower()[0] not in own}
            )
        if strange:
            found.append(f"letters not of {lang}: {' '.join(strange)}")
        words = {word.casefold() for word in _WORD.findall(stripped)}
        for other, telltales in self.content.telltales.items():
            if other == lang:
                continue
            caught = [word for word in telltales if word.casefold() in words]
            if caught:
                found.append(f"{_name(self.content, other)} words: {', '.join(caught[:5])}")
        return found


def _alternation(terms: Iterable[str], words: bool) -> re.Pattern[str]:
    ordered = sorted({t for t in terms if t}, key=len, reverse=True)
    body = "|".join(re.escape(term) for term in ordered) or "$^"
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)" if words else f"(?:{body})")


def _strip(text: str, names: re.Pattern[str], motorways: re.Pattern[str], extra: Any) -> str:
    extra = [value for value in extra if value]
    if extra:
        text = _alternation(extra, words=False).sub(" ", text)
    text = _NOT_WORDS.sub(" ", text)
    return motorways.sub(" ", names.sub(" ", text))


def _is_letter(ch: str) -> bool:
    # Letters of an alphabet; not symbols that count as letters (ℹ "INFORMATION SOURCE").
    return ch.isalpha() and "LETTER" in unicodedata.name(ch, "")


def _is_cyrillic(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("CYRILLIC")


def _latin(word: str) -> bool:
    return any(unicodedata.name(ch, "").startswith("LATIN") for ch in word)


def _name(content: Content, lang: str) -> str:
    found = content.languages.get(lang)
    return found.name if found is not None and found.name else lang
