"""Neutral events and replies: what every transport translates to and from."""

from __future__ import annotations

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
    # Set by a transport when a file could not be taken (e.g. "too_large").
    attachment_error: str = ""
    language_hint: str = ""
    is_group: bool = False
    platform_event_id: str = ""


@dataclass(frozen=True, slots=True)
class Choice:
    """A button (Telegram) or a numbered option (Matrix, terminal)."""

    id: str
    label: str


@dataclass(slots=True)
class Reply:
    """One message from the bot. Transports render it; all text is plain and escaped."""

    text: str
    title: str = ""
    choices: list[Choice] = field(default_factory=list)
    request_location: bool = False
    location: Location | None = None
    attachments: list[Attachment] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "title": self.title,
            "choices": [[c.id, c.label] for c in self.choices],
            "request_location": self.request_location,
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
            choices=[Choice(str(i), str(label)) for i, label in data.get("choices", [])],
            request_location=bool(data.get("request_location", False)),
            location=None if location is None else Location(*location),
            attachments=[Attachment.from_json(a) for a in data.get("attachments", [])],
        )


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
