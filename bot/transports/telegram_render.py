"""Telegram rendering of neutral replies: HTML text, keyboards, message parts. No I/O.

One `Reply` becomes one or more `Part`s, sent in order:

* the text (title in bold, everything HTML-escaped), split at paragraph boundaries when
  it is longer than Telegram's 4096 characters;
* the choices as an inline keyboard under the (last) text message, one button per row, or
  two per row when every label is short;
* a shared location and attached files after the text, each sent as a reply to the text
  message, so that evidence stays with its report even when two reports interleave;
* `request_location` in a private chat: the question carries a reply keyboard with a
  "send my location" button, and the inline choices follow in a short second message
  ("Or:"), because one message cannot carry both kinds of keyboard.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from typing import Literal

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.core.events import Attachment, Choice, Location, Reply

TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64
SHORT_LABEL = 16
EMPTY_TEXT = "⬇️"

PartKind = Literal["text", "location", "attachment"]
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


@dataclass
class Part:
    """One Telegram message to send."""

    kind: PartKind
    html: str = ""
    location: Location | None = None
    attachment: Attachment | None = None
    markup: Markup | None = None
    # Sent as a reply to the first message of the same Reply (evidence under its report).
    threaded: bool = False


@dataclass(frozen=True)
class LocationLabels:
    """Words for the location keyboard, in the reader's language."""

    share: str
    more: str


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit`, cut at paragraphs, else lines, else words, else anywhere."""
    text = text.strip("\n")
    if utf16_len(text) <= limit:
        return [text] if text else []
    for separator in ("\n\n", "\n", " "):
        pieces = text.split(separator)
        if len(pieces) > 1:
            break
    else:
        return _hard_cut(text, limit)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{separator}{piece}" if current else piece
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if current.strip():
            chunks.append(current.strip("\n"))
        if utf16_len(piece) <= limit:
            current = piece
        else:
            *full, current = split_text(piece, limit) or [""]
            chunks.extend(full)
    if current.strip():
        chunks.append(current.strip("\n"))
    return chunks


def _hard_cut(text: str, limit: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = utf16_len(char)
        if size + width > limit:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        chunks.append("".join(current))
    return chunks


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def plain_text(reply: Reply) -> str:
    """A reply's text as the person reads it (its lead, title and text)."""
    body = "\n".join(part for part in (reply.title, reply.text) if part)
    return f"{reply.lead}\n\n{body}".strip("\n") if reply.lead else body


def message_texts(title: str, text: str, lead: str = "") -> list[str]:
    """The HTML of the text messages of a reply: the lead, the title in bold, the text; all
    escaped. The lead shares the first message when both fit."""
    body = _body_texts(title, text)
    if not lead:
        return body
    head = split_text(lead)
    if body and utf16_len(f"{lead}\n\n{title}\n{text}") <= TEXT_LIMIT:
        return [f"{escape(lead)}\n\n{body[0]}", *body[1:]]
    return [escape(chunk) for chunk in head] + body


def _body_texts(title: str, text: str) -> list[str]:
    plain = "\n".join(part for part in (title, text) if part)
    chunks = split_text(plain)
    rendered = []
    for index, chunk in enumerate(chunks):
        if index == 0 and title and chunk.startswith(title):
            rendered.append(f"<b>{escape(title)}</b>{escape(chunk[len(title) :])}")
        else:
            rendered.append(escape(chunk))
    return rendered


def inline_keyboard(choices: list[Choice]) -> InlineKeyboardMarkup | None:
    """One button per row, two per row when every label is short."""
    return _inline_keyboard(tuple((choice.id, choice.label) for choice in choices))


@functools.lru_cache(maxsize=2048)
def _inline_keyboard(choices: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    # Menus repeat, and PTB's objects are immutable: each keyboard is built once.
    usable = [
        (id_, label) for id_, label in choices if label and len(id_.encode()) <= CALLBACK_DATA_LIMIT
    ]
    if not usable:
        return None
    buttons = [InlineKeyboardButton(label, callback_data=id_) for id_, label in usable]
    per_row = 2 if all(len(label) <= SHORT_LABEL for _, label in usable) else 1
    return InlineKeyboardMarkup(
        [buttons[index : index + per_row] for index in range(0, len(buttons), per_row)]
    )


def location_keyboard(label: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        [[KeyboardButton(label, request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def render(reply: Reply, labels: LocationLabels | None = None) -> list[Part]:
    """The messages of one reply. `labels` is given for a location question in a private
    chat: then the question gets the location keyboard and the choices a second message."""
    parts = [Part("text", html=text) for text in message_texts(reply.title, reply.text, reply.lead)]
    keyboard = inline_keyboard(reply.choices)
    evidence: list[Part] = []
    if reply.location is not None:
        evidence.append(Part("location", location=reply.location, threaded=bool(parts)))
    evidence.extend(
        Part("attachment", attachment=item, threaded=bool(parts)) for item in reply.attachments
    )
    if labels is not None:
        if not parts:
            parts.append(Part("text", html=escape(labels.share)))
        parts[-1].markup = location_keyboard(labels.share)
        if keyboard is not None:
            parts.append(Part("text", html=escape(labels.more), markup=keyboard))
        return parts + evidence
    if keyboard is not None:
        if parts:
            parts[-1].markup = keyboard
        elif evidence:
            evidence[-1].markup = keyboard
        else:
            parts.append(Part("text", html=EMPTY_TEXT, markup=keyboard))
    return parts + evidence
