"""Neutral events and replies: what every transport translates to and from."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    TEXT = "text"
    COMMAND = "command"
    CHOICE = "choice"
    LOCATION = "location"
    ATTACHMENT = "attachment"
    UNSUPPORTED = "unsupported"


class AttachmentKind(StrEnum):
    PHOTO = "photo"
    VIDEO = "video"
    VOICE = "voice"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float

    @property
    def valid(self) -> bool:
        return -90.0 <= self.latitude <= 90.0 and -180.0 <= self.longitude <= 180.0

    def map_link(self) -> str:
        return (
            "https://www.openstreetmap.org/?mlat="
            f"{self.latitude:.5f}&mlon={self.longitude:.5f}#map=17/"
            f"{self.latitude:.5f}/{self.longitude:.5f}"
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a user sent, already saved in the media store under its SHA-256."""

    kind: AttachmentKind
    sha256: str
    size: int
    file_name: str = ""
    mime_type: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "sha256": self.sha256,
            "size": self.size,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        return cls(
            kind=AttachmentKind(data["kind"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            file_name=str(data.get("file_name", "")),
            mime_type=str(data.get("mime_type", "")),
        )


class FileUnavailable(Exception):
    """A file a person sent could not be fetched from the platform."""


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """A file a person sent, not fetched yet: the platform's copy is downloaded only when a
    dialogue step wants it (never before consent, over the flood limit, or outside a
    report). `fetch` raises FileUnavailable, or returns the bytes."""

    kind: AttachmentKind
    file_name: str
    mime_type: str
    fetch: Callable[[], Awaitable[bytes]] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a person did in a chat, in platform-neutral terms."""

    transport: str
    chat_id: str
    user_id: str
    kind: EventKind
    text: str = ""
    command: str = ""
    args: str = ""
    choice: str = ""
    location: Location | None = None
    attachment: Attachment | None = None
    # A file sent, to be fetched when a step wants it (see `Context.take_file`).
    file: IncomingFile | None = None
    # Set when a file could not be taken ("too_large", "unavailable").
    attachment_error: str = ""
    language_hint: str = ""
    is_group: bool = False
    platform_event_id: str = ""
    # How coordinators can reach the sender on their platform ("@name", a Matrix id), if
    # the sender allows contact; never shown otherwise.
    sender_handle: str = ""
    # The door an event came through when it is not the person's own chat: "web" for the
    # coordinator console, which acts as the coordinator's own identity (their roles, their
    # audit entries) in a dialogue of its own (`chat_id`), never their private chat.
    door: str = ""
    # A form sent whole (the console's forms): step key -> the answer as typed. The form
    # engine checks each with the chat's parsers and ends in the same `on_submit`.
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Choice:
    """A button (Telegram) or a numbered option (Matrix, terminal).

    A control (back, skip, cancel, ...) names the `command` that does the same: where
    options are numbered, controls are offered as that command, never as a number, so a
    number typed at a question is always an answer."""

    id: str
    label: str
    command: str = ""


@dataclass(slots=True)
class Reply:
    """One message from the bot. Transports render it; all text is plain and escaped."""

    text: str
    title: str = ""
    choices: list[Choice] = field(default_factory=list)
    request_location: bool = False
    # The label of the button that shares the location, in the person's language, where
    # the platform shows one (Telegram); empty: the platform's default words.
    share_label: str = ""
    location: Location | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # A short notice about the event itself ("That option is no longer valid"): Telegram
    # shows it as the pressed button's toast; elsewhere it is an ordinary message.
    toast: bool = False
    # Text shown before the title: what an answer said before its question ("Saved."),
    # so that one answer is one message.
    lead: str = ""
    # The next page of the message whose button was pressed: Telegram shows it in that
    # message; elsewhere it is a message of its own. Never stored (answers only).
    in_place: bool = False
    # The question after a pressed choice: Telegram turns the pressed message into it, the
    # pick shown on top ("✓ No"), when that message is the newest in the chat (one edit,
    # no new message); elsewhere, and on an older message, it comes below as its own.
    # Never stored (answers only).
    next_question: bool = False
    # Carries a one-time secret (a console login link): the conversation log keeps its
    # title only. Never stored either (answers only).
    secret: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "title": self.title,
            "lead": self.lead,
            "choices": [[c.id, c.label, c.command] for c in self.choices],
            "request_location": self.request_location,
            "share_label": self.share_label,
            "location": None
            if self.location is None
            else [self.location.latitude, self.location.longitude],
            "attachments": [a.to_json() for a in self.attachments],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        location = data.get("location")
        return cls(
            text=str(data.get("text", "")),
            title=str(data.get("title", "")),
            lead=str(data.get("lead", "")),
            choices=[Choice(*(str(part) for part in item[:3])) for item in data.get("choices", [])],
            request_location=bool(data.get("request_location", False)),
            share_label=str(data.get("share_label", "")),
            location=None if location is None else Location(*location),
            attachments=[Attachment.from_json(a) for a in data.get("attachments", [])],
        )


def merged(replies: list[Reply]) -> list[Reply]:
    """The replies as few messages as their content allows: a plain text (no title, no
    choices, no place, no files) goes on top of the reply after it."""
    found: list[Reply] = []
    waiting: list[str] = []
    for reply in replies:
        if reply.toast:
            found.append(reply)
            continue
        plain = not (
            reply.title
            or reply.choices
            or reply.location
            or reply.attachments
            or reply.request_location
            or reply.lead
        )
        if plain and reply.text:
            waiting.append(reply.text)
            continue
        if waiting:
            reply = dataclasses.replace(
                reply, lead="\n\n".join(filter(None, [*waiting, reply.lead]))
            )
            waiting = []
        found.append(reply)
    if waiting:
        found.append(Reply("\n\n".join(waiting)))
    return found


def parse_command(text: str, prefixes: str = "/") -> tuple[str, str] | None:
    """Split '/cmd@bot args' into ('cmd', 'args'); None if the text is not a command."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in prefixes:
        return None
    head, _, args = stripped[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name or not all(ch.isalnum() or ch == "_" for ch in name):
        return None
    return name, args.strip()


MAX_ROW_ID = 2**31 - 1  # the largest id an INTEGER primary key holds on PostgreSQL


def row_id(raw: str) -> int | None:
    """A database id carried in a choice or typed as an argument ('12', '#12'); None for
    anything else — other digits ('²', '١'), signs, or numbers no row can have."""
    text = raw.strip()
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None
