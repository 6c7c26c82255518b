"""What comes in before it is routed: cleaned, bounded, and typed choices resolved.

Everything here is pure (no database, no I/O), so the Core can run it on any input.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

from bot.core.events import Event, EventKind

# Choice ids are made by the bot and fit Telegram's callback data (64 bytes); anything
# longer was not made by the bot.
CHOICE_LIMIT = 64
# Platform ids (Telegram numbers, Matrix ids, terminal names) fit the users table.
ID_LIMIT = 255
# A typed number picks an option; no list is longer than this many digits.
NUMBER_DIGITS = 3


def clean(text: str, keep: str = "") -> str:
    """`text` without control, format, surrogate or unassigned characters (but `keep`)."""
    if text.isprintable():  # the usual case: no category "C" character at all
        return text
    return "".join(ch for ch in text if ch in keep or unicodedata.category(ch)[0] != "C")


def normalise(event: Event) -> Event:
    """Strip what no person types (control characters, NUL, lone surrogates) from every
    field a handler reads, so that nothing of it reaches a handler or the database."""
    return dataclasses.replace(
        event,
        text=clean(event.text, "\n\t").strip(),
        command=clean(event.command),
        args=clean(event.args, "\n\t").strip(),
        choice=clean(event.choice),
        language_hint=clean(event.language_hint)[:16],
    )


def valid_sender(event: Event) -> bool:
    """Ids a transport could have given: not empty, not too long, nothing invisible."""
    return all(
        0 < len(value) <= ID_LIMIT and clean(value) == value
        for value in (event.user_id, event.chat_id, event.transport)
    )


def too_long(event: Event, limit: int) -> int:
    """The length of an over-long text or command argument, else 0."""
    if event.kind is EventKind.TEXT and len(event.text) > limit:
        return len(event.text)
    if event.kind is EventKind.COMMAND and len(event.args) > limit:
        return len(event.args)
    return 0


def forged_choice(event: Event) -> bool:
    return event.kind is EventKind.CHOICE and len(event.choice.encode()) > CHOICE_LIMIT


def resolve_choice(event: Event, shown_choices: list[Any], data: dict[str, Any]) -> Event:
    """Turn a typed number or label back into the choice last shown."""
    if event.kind is not EventKind.TEXT or not shown_choices:
        return event
    text = event.text.casefold()
    shown = [(str(cid), str(label)) for cid, label in shown_choices]
    expects_number = data.get("input") == "number"
    expects_choice = data.get("input", "") in ("", "choice", "multi")
    if text.isascii() and text.isdigit() and not expects_number:
        index = int(text) - 1 if len(text) <= NUMBER_DIGITS else -1
        if 0 <= index < len(shown):
            return dataclasses.replace(event, kind=EventKind.CHOICE, choice=shown[index][0])
        return event
    for cid, label in shown:
        if text in (label.casefold(), _bare(label).casefold()):
            return dataclasses.replace(event, kind=EventKind.CHOICE, choice=cid)
    # A word typed that only one label contains ("köln" for "Cologne (Köln)").
    if len(text) >= 3 and expects_choice:
        found = [cid for cid, label in shown if text in _words(label)]
        if len(found) == 1:
            return dataclasses.replace(event, kind=EventKind.CHOICE, choice=found[0])
    return event


def _words(label: str) -> set[str]:
    cleaned = "".join(ch if ch.isalnum() else " " for ch in label.casefold())
    return set(cleaned.split())


def _bare(label: str) -> str:
    """A label without its leading emoji, so 'Lkw-Fahrer' picks '🚚 Lkw-Fahrer'."""
    return label.lstrip(
        "".join(ch for ch in label if unicodedata.category(ch) in ("So", "Sk", "Mn", "Cf")) + " "
    )
