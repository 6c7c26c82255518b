"""Free text to intents: keywords from content, matched as whole words.

A keyword is a word or phrase ("hilfe", "meine meldungen") that must stand as whole words
in the text, or a stem ending in `*` ("schleich*", "podejrzan*") that must start a word:
"menü" does not match "menüs", "schleich*" matches "schleichen".
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=4096)
def _pattern(keyword: str) -> re.Pattern[str]:
    word = keyword.casefold()
    if word.endswith("*"):
        return re.compile(r"(?<!\w)" + re.escape(word[:-1]))
    return re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)")


def mentions(text: str, keyword: str) -> bool:
    """Whether `keyword` (a word, phrase or `stem*`) occurs in `text`, case-folded."""
    return bool(keyword.strip("*")) and _pattern(keyword).search(text.casefold()) is not None


def words(text: str) -> int:
    return len(re.findall(r"\w+", text))
