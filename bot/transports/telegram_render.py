"""Telegram rendering of neutral replies: HTML text, keyboards, message parts. No I/O.

One `Reply` becomes as few messages (`Part`s) as its content allows, sent in order:

* the text (lead, title in bold, everything HTML-escaped), split at paragraph boundaries
  when it is longer than Telegram's 4096 characters;
* the choices as an inline keyboard under the (last) text message, one button per row, or
  two per row when every label is short;
* one file and a text that fits a caption (1024 characters): one message, the file with
  the text as its caption and the keyboard under it — a report reaches a coordinator group
  as one message;
* otherwise a shared place and the files after the text, each as a reply to the text
  message, so that evidence stays with its report even when two reports interleave; a
  place whose map link the text already shows is not sent again as a location;
* `request_location` in a private chat: one message, the question with a reply keyboard
  of a "send my location" button and the choices' labels as buttons below it (a label
  sent back picks its choice, as when typed).
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
CAPTION_LIMIT = 1024
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
    # An attachment's caption (HTML) is `html`.
    # Sent as a reply to the first message of the same Reply (evidence under its report).
    threaded: bool = False


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


def location_keyboard(share: str, choices: list[Choice]) -> ReplyKeyboardMarkup:
    """The "send my location" button, and the choices' labels as buttons below it."""
    labels = [choice.label for choice in choices if choice.label]
    per_row = 2 if all(len(label) <= SHORT_LABEL for label in labels) else 1
    rows = [[KeyboardButton(share, request_location=True)]]
    rows += [
        [KeyboardButton(label) for label in labels[index : index + per_row]]
        for index in range(0, len(labels), per_row)
    ]
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


def render(reply: Reply, share_label: str = "") -> list[Part]:
    """The messages of one reply (see the module). `share_label` is given for a location
    question in a private chat: the "send my location" button's label."""
    texts = message_texts(reply.title, reply.text, reply.lead)
    if share_label:
        parts = [Part("text", html=text) for text in texts] or [
            Part("text", html=escape(share_label))
        ]
        parts[-1].markup = location_keyboard(share_label, reply.choices)
        return parts + _evidence(reply, threaded=True)
    keyboard = inline_keyboard(reply.choices)
    evidence = _evidence(reply, threaded=bool(texts))
    captioned = utf16_len(plain_text(reply)) <= CAPTION_LIMIT
    if len(evidence) == 1 and evidence[0].kind == "attachment" and captioned:
        # One message: the file, the text as its caption, the keyboard under it.
        only = evidence[0]
        return [
            Part("attachment", html="".join(texts), attachment=only.attachment, markup=keyboard)
        ]
    parts = [Part("text", html=text) for text in texts]
    if keyboard is not None:
        if parts:
            parts[-1].markup = keyboard
        elif evidence:
            evidence[-1].markup = keyboard
        else:
            parts.append(Part("text", html=EMPTY_TEXT, markup=keyboard))
    return parts + evidence


def _evidence(reply: Reply, threaded: bool) -> list[Part]:
    """The place (unless the text shows its map link) and the files, one message each."""
    found: list[Part] = []
    location = reply.location
    if location is not None and location.map_link() not in reply.text:
        found.append(Part("location", location=location, threaded=threaded))
    found.extend(
        Part("attachment", attachment=item, threaded=threaded) for item in reply.attachments
    )
    return found
