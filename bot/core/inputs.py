"""What comes in before it is routed: cleaned, bounded, and typed choices resolved.

Everything here is pure (no database, no I/O), so the Core can run it on any input.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable
from typing import Any

from bot.core.events import Choice, Event, EventKind

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
        fields={clean(key): clean(value, "\n\t").strip() for key, value in event.fields.items()},
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
    return max((len(value) for value in event.fields.values() if len(value) > limit), default=0)


def forged_choice(event: Event) -> bool:
    return event.kind is EventKind.CHOICE and len(event.choice.encode()) > CHOICE_LIMIT


# The open step wants typed input: a number typed there is the answer, not an option.
TYPED_INPUTS = frozenset({"text", "number", "time", "datetime", "location"})


@dataclasses.dataclass(frozen=True, slots=True)
class Shown:
    """A choice as last shown to a person: numbered where there are no buttons, or a
    control offered as its command, or (an alert's button during a dialogue) by label only."""

    id: str
    label: str
    command: str = ""
    numbered: bool = True

    def dump(self) -> list[Any]:
        return [self.id, self.label, self.command, self.numbered]

    @classmethod
    def load(cls, item: Any) -> Shown:
        parts = list(item)
        command = str(parts[2]) if len(parts) > 2 else ""
        numbered = bool(parts[3]) if len(parts) > 3 else not command
        return cls(str(parts[0]), str(parts[1]), command, numbered)


def shown(choices: Iterable[Choice], numbered: bool = True) -> list[list[Any]]:
    """What to remember of the choices of a reply (controls are never numbered)."""
    return [Shown(c.id, c.label, c.command, numbered and not c.command).dump() for c in choices]


def by_label(shown_choices: list[Any], used: str = "") -> list[list[Any]]:
    """The remembered choices that answer to their label only (a delivered message's,
    e.g. an alert's "Understood" during a dialogue), without the one just `used`."""
    entries = [Shown.load(item) for item in shown_choices]
    return [e.dump() for e in entries if not (e.numbered or e.command or e.id == used)]


def resolve_choice(event: Event, shown_choices: list[Any], data: dict[str, Any]) -> Event:
    """Turn a typed number or label back into the choice last shown."""
    if event.kind is not EventKind.TEXT or not shown_choices:
        return event
    entries = [Shown.load(item) for item in shown_choices]
    text = event.text.casefold()
    expects = str(data.get("input", ""))
    typed = expects in TYPED_INPUTS
    numbered = [entry for entry in entries if entry.numbered]
    if text.isascii() and text.isdigit():
        index = int(text) - 1 if len(text) <= NUMBER_DIGITS else -1
        if not typed and 0 <= index < len(numbered):
            return dataclasses.replace(event, kind=EventKind.CHOICE, choice=numbered[index].id)
        return event
    for entry in entries:
        if text in (entry.label.casefold(), _bare(entry.label).casefold()):
            return dataclasses.replace(event, kind=EventKind.CHOICE, choice=entry.id)
    # A word typed that only one label contains ("köln" for "Cologne (Köln)").
    if len(text) >= 3 and expects in ("", "choice", "multi"):
        found = [entry.id for entry in numbered if text in _words(entry.label)]
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
