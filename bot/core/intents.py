"""Free text to intents: keywords from content, matched as whole words.

A keyword is a word or phrase ("hilfe", "meine meldungen") that must stand as whole words
in the text, or a stem ending in `*` ("schleich*", "podejrzan*") that must start a word:
"menü" does not match "menüs", "schleich*" matches "schleichen".

Both sides are compared without case and accents: a driver typing on a phone without their
language's keyboard writes "podezrely" for "podezřelý", "suspecti" for "suspecți", "sessiz
alarm" in capitals as "SESSİZ ALARM".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """`text` as keywords are compared: case-folded, accents dropped, Turkish dotted and
    dotless i both "i"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("ı", "i")


@lru_cache(maxsize=8192)
def _keyword(keyword: str) -> tuple[str, re.Pattern[str] | None]:
    """A keyword folded; a pattern only where a word of the text cannot answer (a stem, a
    phrase, a word with a hyphen)."""
    word = fold(keyword)
    if word.endswith("*"):
        return word, re.compile(r"(?<!\w)" + re.escape(word[:-1]))
    if _WORD.fullmatch(word):
        return word, None
    return word, re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)")


@lru_cache(maxsize=256)
def _text(text: str) -> tuple[str, frozenset[str]]:
    """A text folded, and its words: most keywords are one word, found in the set."""
    folded = fold(text)
    return folded, frozenset(_WORD.findall(folded))


def mentions(text: str, keyword: str) -> bool:
    """Whether `keyword` (a word, phrase or `stem*`) occurs in `text`, without case and
    accents."""
    if not keyword.strip("*"):
        return False
    word, pattern = _keyword(keyword)
    folded, found = _text(text)
    return word in found if pattern is None else pattern.search(folded) is not None


def words(text: str) -> int:
    return len(re.findall(r"\w+", text))
