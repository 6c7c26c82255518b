"""Which content keys the console uses, for `sicherheitsbot content check`: every
`t("…")` in its templates, every `message_key=` and `content.text(…, "…")` in its views,
and the keys it builds (a section's title, a history step)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.core.i18n import Content, ContentError
from bot.storage.alert_board import RECEIPTS
from bot.storage.console import HISTORY_ACTIONS
from bot.web.annual import COLUMNS
from bot.web.sheet import SECTIONS
from bot.web.statistics import FIGURES, SHOWN

HERE = Path(__file__).parent
USES = (
    re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']"""),
    re.compile(r"""message_key\s*=\s*["']([a-z0-9_.]+)["']"""),
    re.compile(r"""\.text\(\s*[a-z_.]+,\s*["']([a-z0-9_]+\.[a-z0-9_.]+)["']"""),
)
BUILT = (
    *(f"console.section_{key}" for key in (*SECTIONS, "contact", "files", "history", "triage")),
    *(f"console.history_{action}" for action in HISTORY_ACTIONS),
    *(f"console.receipt_{key}" for key in RECEIPTS),
    *(f"console.figure_{key}" for key in FIGURES),
    *(f"console.number_{key}" for key in SHOWN),
    *(f"console.annual_{key}" for key in COLUMNS),
)


def used_keys() -> set[str]:
    found = set(BUILT)
    for path in [*HERE.glob("templates/*.html"), *HERE.glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for pattern in USES:
            found.update(pattern.findall(text))
    return found


def missing_console_texts(directory: Path | None = None) -> list[str]:
    """A line for each key the console uses that a language with the coordinators' texts
    lacks (the others show the console in the deployment's default language)."""
    try:
        content = Content(directory)
    except ContentError as exc:
        return [str(exc)]
    return [
        f"{lang}: {key} is used by the web console but missing"
        for key in sorted(used_keys())
        for lang in content.coordinator_languages
        if not isinstance(content.messages[lang].get(key), str)
    ]
