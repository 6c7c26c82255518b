"""Matrix room events -> neutral events: text, commands, locations and files.

Commands start with "!" or "/" (Element keeps "/" for its own commands, so "!report" is the
comfortable form). In group rooms only what is meant for the bot passes: commands, messages
that mention it and replies to it; in the coordinator room everything a coordinator says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Container
from dataclasses import replace
from typing import Any

import nio
from nio.crypto.attachments import decrypt_attachment

from bot.config import MatrixSettings
from bot.core.app import Core
from bot.core.events import (
    AttachmentKind,
    Event,
    EventKind,
    FileUnavailable,
    IncomingFile,
    Location,
    parse_command,
)
from bot.transports.matrix_outbound import TRANSPORT, is_group_room

log = logging.getLogger(__name__)
COMMAND_PREFIXES = "!/"
MEDIA_KINDS = {
    "m.image": AttachmentKind.PHOTO,
    "m.video": AttachmentKind.VIDEO,
    "m.audio": AttachmentKind.VOICE,
    "m.file": AttachmentKind.DOCUMENT,
}
INVALID = Location(999.0, 999.0)  # answered by the core as an invalid location


def parse_geo_uri(uri: str) -> Location:
    """'geo:51.2,6.7;u=20' -> Location; anything unreadable -> an invalid location."""
    if not uri.startswith("geo:"):
        return INVALID
    parts = uri[4:].split(";", 1)[0].split(",")
    try:
        return Location(float(parts[0]), float(parts[1]))
    except (ValueError, IndexError):
        return INVALID


def _relation(content: dict[str, Any]) -> dict[str, Any]:
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def _reply_target(content: dict[str, Any]) -> str:
    in_reply = _relation(content).get("m.in_reply_to")
    return str(in_reply.get("event_id", "")) if isinstance(in_reply, dict) else ""


def strip_reply_fallback(body: str) -> str:
    """Drop the '> <@someone> quoted text' lines older clients put before a reply."""
    lines = body.split("\n")
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


class Inbound:
    """Translates one room event; no feature logic."""

    def __init__(
        self, client: Any, core: Core, settings: MatrixSettings, own_events: Container[str]
    ) -> None:
        self.client = client
        self.core = core
        self.settings = settings
        self.own_events = own_events

    async def translate(self, room: Any, event: Any) -> Event | None:
        """A neutral event, or None for what is not for the bot (edits, notices, chatter)."""
        content = event.source.get("content") or {}
        if _relation(content).get("rel_type") == "m.replace":
            return None  # an edit of an earlier message
        if isinstance(event, nio.RoomMessageNotice):
            return None  # notices are what bots send: never answer them
        msgtype = str(content.get("msgtype", ""))
        if msgtype.startswith("m.key.verification"):
            return None
        group = is_group_room(room, self.settings)
        base = Event(
            TRANSPORT,
            room.room_id,
            event.sender,
            EventKind.TEXT,
            is_group=group,
            platform_event_id=event.event_id,
            # The Matrix id is how coordinators reach someone who allowed contact.
            sender_handle=event.sender,
        )
        free = not group or (
            room.room_id == self.settings.coordinator_room
            and self.core.is_configured_coordinator(TRANSPORT, event.sender)
        )
        replied_to_bot = self._replies_to_bot(content)
        if isinstance(event, (nio.RoomMessageText, nio.RoomMessageEmote)):
            text = str(event.body)
            if _reply_target(content):
                text = strip_reply_fallback(text)
            text, mentioned = self._without_mention(room, content, text)
            parsed = parse_command(text, COMMAND_PREFIXES)
            if not (free or mentioned or replied_to_bot or parsed is not None):
                return None
            if parsed is not None:
                name, args = parsed
                return replace(base, kind=EventKind.COMMAND, command=name, args=args, text=text)
            return replace(base, text=text)
        if not (free or replied_to_bot):
            return None
        if msgtype == "m.location":
            geo_uri = content.get("geo_uri") or (
                content.get("org.matrix.msc3488.location") or {}
            ).get("uri", "")
            return replace(base, kind=EventKind.LOCATION, location=parse_geo_uri(str(geo_uri)))
        media = isinstance(event, (nio.RoomMessageMedia, nio.RoomEncryptedMedia))
        if media and msgtype in MEDIA_KINDS:
            return await self._attachment(base, event, content, MEDIA_KINDS[msgtype])
        return replace(base, kind=EventKind.UNSUPPORTED)

    def _replies_to_bot(self, content: dict[str, Any]) -> bool:
        target = _reply_target(content)
        if not target:
            return False
        body = str(content.get("body", ""))
        return target in self.own_events or body.startswith(f"> <{self.client.user_id}>")

    def _without_mention(self, room: Any, content: dict[str, Any], text: str) -> tuple[str, bool]:
        """Whether the bot is mentioned, and the text without a leading mention."""
        own = str(self.client.user_id)
        member = room.users.get(own)
        names = [own, str(member.display_name or "") if member is not None else ""]
        names.append(own[1:].split(":", 1)[0])
        mentions = content.get("m.mentions")
        mentioned = isinstance(mentions, dict) and own in (mentions.get("user_ids") or [])
        mentioned = mentioned or own in text
        mentioned = mentioned or f"matrix.to/#/{own}" in str(content.get("formatted_body", ""))
        for name in filter(None, names):
            after = text[len(name) : len(name) + 1]
            if text.casefold().startswith(name.casefold()) and not after.isalnum():
                return text[len(name) :].lstrip(" :,").strip(), True
        return text, mentioned

    async def _attachment(
        self, base: Event, event: Any, content: dict[str, Any], kind: AttachmentKind
    ) -> Event:
        found = content.get("info")
        info: dict[str, Any] = found if isinstance(found, dict) else {}
        mime = str(info.get("mimetype") or getattr(event, "mimetype", "") or "")
        name = str(content.get("filename") or content.get("body") or "")
        base = replace(base, kind=EventKind.ATTACHMENT)
        size = info.get("size")
        if isinstance(size, int) and size > self.core.media.max_bytes:
            return replace(base, attachment_error="too_large")

        async def fetch() -> bytes:
            """Downloaded (and decrypted) only when a dialogue step wants the file."""
            response = await self.client.download(mxc=event.url)
            if not isinstance(response, nio.DownloadResponse):
                log.warning("matrix: download of %s failed: %s", event.event_id, response)
                raise FileUnavailable(str(getattr(response, "status_code", "")))
            data = bytes(response.body)
            if isinstance(event, nio.RoomEncryptedMedia):
                data = await asyncio.to_thread(
                    decrypt_attachment, data, event.key["k"], event.hashes["sha256"], event.iv
                )
            return bytes(data)

        return replace(base, file=IncomingFile(kind, name, mime, fetch))
