"""Neutral replies -> Matrix messages, and the outbox `Sender` for Matrix.

A reply becomes an m.text message with a plain `body` and an HTML `formatted_body` (the
title in bold, options as numbered lines "1. Label" that can be typed back), an extra
m.location event for a place, and one m.image/m.video/m.audio/m.file per attachment
(uploaded encrypted in encrypted rooms).
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import nio

from bot.config import MatrixSettings
from bot.core.app import Core
from bot.core.events import Attachment, AttachmentKind, Location, Reply
from bot.delivery.outbox import RetryLater, TransientFailure, Unreachable
from bot.delivery.pacing import ChatLimiter, Limits
from bot.logs import ACTIVITY

if TYPE_CHECKING:
    from bot.transports.matrix_direct import DirectRooms

log = logging.getLogger(__name__)
TRANSPORT = "matrix"
MSGTYPES = {
    AttachmentKind.PHOTO: "m.image",
    AttachmentKind.VIDEO: "m.video",
    AttachmentKind.VOICE: "m.audio",
    AttachmentKind.DOCUMENT: "m.file",
}
GONE = {"M_FORBIDDEN", "M_NOT_FOUND", "M_UNKNOWN_ROOM"}
OWN_EVENTS_KEPT = 2000


def is_group_room(room: Any, settings: MatrixSettings) -> bool:
    """More than two members, or the coordinator room (always shared)."""
    return bool(room.member_count > 2 or room.room_id == settings.coordinator_room)


def text_content(reply: Reply) -> dict[str, Any] | None:
    """The message text: plain body and HTML, everything escaped. The lead, the question
    and the options are blocks with one blank line between them (texts from content may
    end with a newline: trailing blank lines are dropped)."""
    lead, title, text = reply.lead.rstrip(), reply.title.strip(), reply.text.rstrip()
    answers = [choice for choice in reply.choices if not choice.command]
    controls = [choice for choice in reply.choices if choice.command]
    lines = [f"{index}. {choice.label}" for index, choice in enumerate(answers, 1)]
    if controls:
        # Controls as commands: a number typed at the question is always an answer.
        lines.append(" · ".join(f"{choice.label}: !{choice.command}" for choice in controls))
    plain = [lead, "\n".join(filter(None, (title, text))), "\n".join(lines)]
    rich = [
        _html(lead),
        "<br>".join(filter(None, (f"<b>{html.escape(title)}</b>" if title else "", _html(text)))),
        "<br>".join(html.escape(line) for line in lines),
    ]
    if not any(plain):
        return None
    return {
        "msgtype": "m.text",
        "body": "\n\n".join(filter(None, plain)),
        "format": "org.matrix.custom.html",
        "formatted_body": "<br><br>".join(filter(None, rich)),
    }


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def location_content(location: Location) -> dict[str, Any]:
    geo_uri = f"geo:{location.latitude:.6f},{location.longitude:.6f}"
    body = f"📍 {location.latitude:.5f}, {location.longitude:.5f} {location.map_link()}"
    return {
        "msgtype": "m.location",
        "body": body,
        "geo_uri": geo_uri,
        "org.matrix.msc3488.location": {"uri": geo_uri},
        "org.matrix.msc3488.asset": {"type": "m.pin"},
        "org.matrix.msc1767.text": body,
    }


def failure(response: Any) -> Exception:
    """A nio error response as the outbox understands it."""
    code = str(getattr(response, "status_code", "") or "")
    status = getattr(getattr(response, "transport_response", None), "status", 0) or 0
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        ACTIVITY.flood_wait()
        return RetryLater((getattr(response, "retry_after_ms", None) or 5000) / 1000)
    if code in GONE:
        return Unreachable(f"{code}: {getattr(response, 'message', '')}"[:200])
    return TransientFailure(f"HTTP {status} {code}: {getattr(response, 'message', '')}"[:200])


class MatrixSender:
    """Sends replies into rooms; what the outbox worker and the transport both use."""

    transport = TRANSPORT

    def __init__(
        self, core: Core, settings: MatrixSettings, limits: Limits, direct: DirectRooms
    ) -> None:
        self.core = core
        self.settings = settings
        self.direct = direct
        self.client: Any = None  # the nio.AsyncClient, once the transport has started
        self.limiter = ChatLimiter(limits)  # for direct answers; the worker has its own
        self.own_events: OrderedDict[str, None] = OrderedDict()
        self._keys = asyncio.Lock()

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        """Outbox delivery: send, then tell the Core, which remembers the options shown (so
        numbers and labels typed back resolve) and, in a direct chat, gives back the open
        question of a dialogue the message interrupted. A Matrix user id as `chat_id`
        (a coordinator named in the config) means the direct room with that person."""
        if chat_id.startswith("@"):
            if self.client is None:
                raise TransientFailure("matrix transport not started")
            chat_id = await self.direct.room_for(self.client, chat_id)
        last = ""
        for reply in replies:
            last = await self.send_reply(chat_id, reply) or last
        with_choices = [reply for reply in replies if reply.choices]
        choices = with_choices[-1].choices if with_choices else []
        room = self.client.rooms.get(chat_id) if self.client is not None else None
        direct = room is not None and not is_group_room(room, self.settings)
        for person in self._people(chat_id):
            if not choices and not direct:
                continue
            again = await self.core.delivered(TRANSPORT, person, chat_id, choices)
            for reply in again if direct else []:
                last = await self.send_reply(chat_id, reply) or last
        return last

    def _people(self, room_id: str) -> list[str]:
        """Who reads a room: the other member of a DM; the coordinators in a group."""
        room = self.client.rooms.get(room_id) if self.client is not None else None
        if room is None:
            return []
        others = [user for user in room.users if user != self.client.user_id]
        if not is_group_room(room, self.settings):
            return others
        return [user for user in others if self.core.is_configured_coordinator(TRANSPORT, user)]

    async def send_reply(self, room_id: str, reply: Reply) -> str:
        """One reply as one or more events; returns the id of the last event sent."""
        room = await self._room(room_id)
        if room.encrypted:
            await self.crypto_upkeep()
        last = ""
        content = text_content(reply)
        if content is not None:
            last = await self._send(room_id, content)
        if reply.location is not None:
            last = await self._send(room_id, location_content(reply.location))
        for attachment in reply.attachments:
            media = await self._media_content(room, attachment)
            if media is not None:
                last = await self._send(room_id, media)
        return last

    async def _room(self, room_id: str) -> Any:
        if self.client is None:
            raise TransientFailure("matrix transport not started")
        room = self.client.rooms.get(room_id)
        if room is None:
            # Joined a moment ago, the sync may not have it yet: only the server knows.
            try:
                joined = await self.client.joined_rooms()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientFailure(repr(exc)[:200]) from exc
            if isinstance(joined, nio.JoinedRoomsResponse) and room_id not in joined.rooms:
                raise Unreachable(f"the bot is not in room {room_id}")
            raise TransientFailure(f"room {room_id} is not synced yet")
        if room.encrypted and self.client.olm is None:
            log.error(
                "matrix: refusing to post into encrypted room %s: end-to-end encryption is "
                "not available (matrix.encryption is off or the crypto store failed)",
                room_id,
            )
            raise TransientFailure("end-to-end encryption not available")
        return room

    async def crypto_upkeep(self) -> None:
        """Upload our keys, learn others' devices, claim one-time keys, flush to-device."""
        client = self.client
        if client is None or client.olm is None:
            return
        async with self._keys:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
            await client.send_to_device_messages()

    async def _send(self, room_id: str, content: dict[str, Any]) -> str:
        try:
            response = await self.client.room_send(
                room_id, "m.room.message", content, ignore_unverified_devices=True
            )
        except nio.LocalProtocolError as exc:
            raise Unreachable(str(exc)[:200]) from exc
        except (aiohttp.ClientError, TimeoutError, nio.SendRetryError) as exc:
            raise TransientFailure(repr(exc)[:200]) from exc
        if not isinstance(response, nio.RoomSendResponse):
            raise failure(response)
        event_id = str(response.event_id)
        self.own_events[event_id] = None
        while len(self.own_events) > OWN_EVENTS_KEPT:
            self.own_events.popitem(last=False)
        return event_id

    async def _media_content(self, room: Any, attachment: Attachment) -> dict[str, Any] | None:
        try:
            data = await asyncio.to_thread(self.core.media.read, attachment.sha256)
        except OSError:
            log.warning("matrix: file %s is gone from the media store", attachment.sha256[:12])
            return None
        mime = attachment.mime_type or "application/octet-stream"
        name = attachment.file_name or f"{attachment.kind}-{attachment.sha256[:12]}"
        try:
            response, keys = await self.client.upload(
                io.BytesIO(data),
                content_type=mime,
                filename=name,
                encrypt=bool(room.encrypted),
                filesize=len(data),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientFailure(repr(exc)[:200]) from exc
        if not isinstance(response, nio.UploadResponse):
            raise failure(response)
        content: dict[str, Any] = {
            "msgtype": MSGTYPES.get(attachment.kind, "m.file"),
            "body": name,
            "info": {"mimetype": mime, "size": len(data)},
        }
        if room.encrypted:
            content["file"] = {"url": response.content_uri, "mimetype": mime, **(keys or {})}
        else:
            content["url"] = response.content_uri
        return content
