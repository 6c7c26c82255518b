"""Telegram updates as neutral events: text, commands, presses, locations, files.

Translation only: no feature logic. Files are checked against the media limit before
anything is downloaded; what the bot cannot read (stickers, polls, contacts, ...) becomes
an UNSUPPORTED event, which the core answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from telegram import Bot, CallbackQuery, Message, User
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, TelegramError

from bot.core.events import (
    AttachmentKind,
    Event,
    EventKind,
    FileUnavailable,
    IncomingFile,
    Location,
    parse_command,
)
from bot.core.media import MediaStore, MediaTooLarge

log = logging.getLogger(__name__)

TRANSPORT = "telegram"
TOO_LARGE = "too_large"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Media:
    """A file in a message, before it is downloaded."""

    kind: AttachmentKind
    file_id: str
    size: int | None
    name: str
    mime: str


def base_event(user: User, chat_id: int, chat_type: str, update_id: int) -> Event:
    return Event(
        transport=TRANSPORT,
        chat_id=str(chat_id),
        user_id=str(user.id),
        kind=EventKind.TEXT,
        language_hint=user.language_code or "",
        is_group=chat_type != ChatType.PRIVATE,
        platform_event_id=str(update_id),
        sender_handle=handle(user),
    )


def handle(user: User) -> str:
    """How coordinators reach a Telegram user who allowed contact: the @name (a link in
    Telegram) and the link by id, which works without a name."""
    link = f"tg://user?id={user.id}"
    return f"@{user.username} · {link}" if user.username else link


def press_event(query: CallbackQuery, update_id: int) -> Event | None:
    """A pressed inline button: the choice is the button's callback data."""
    if query.message is None or query.data is None:
        return None
    chat = query.message.chat
    event = base_event(query.from_user, chat.id, chat.type, update_id)
    return replace(event, kind=EventKind.CHOICE, choice=query.data)


def addressed_to(text: str, username: str) -> bool:
    """'/cmd@otherbot' is for another bot; '/cmd' and '/cmd@us' are for us."""
    head = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    _, at, name = head.partition("@")
    return not at or name.lower() == username.lower()


def replies_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id


def media_of(message: Message) -> Media | None:
    """The file a message carries, if it is one the bot takes."""
    if message.photo:
        largest = message.photo[-1]
        return Media(
            AttachmentKind.PHOTO, largest.file_id, largest.file_size, "photo.jpg", "image/jpeg"
        )
    if message.video is not None:
        video = message.video
        name, mime = video.file_name or "video.mp4", video.mime_type or "video/mp4"
        return Media(AttachmentKind.VIDEO, video.file_id, video.file_size, name, mime)
    if message.video_note is not None:
        note = message.video_note
        return Media(AttachmentKind.VIDEO, note.file_id, note.file_size, "video.mp4", "video/mp4")
    if message.voice is not None:
        voice = message.voice
        mime = voice.mime_type or "audio/ogg"
        return Media(AttachmentKind.VOICE, voice.file_id, voice.file_size, "voice.ogg", mime)
    if message.audio is not None:
        audio = message.audio
        name, mime = audio.file_name or "audio", audio.mime_type or "audio/mpeg"
        return Media(AttachmentKind.VOICE, audio.file_id, audio.file_size, name, mime)
    if message.document is not None:
        document = message.document
        name = document.file_name or "document"
        mime = document.mime_type or "application/octet-stream"
        return Media(AttachmentKind.DOCUMENT, document.file_id, document.file_size, name, mime)
    return None


class Inbound:
    """Builds the event for one message; downloads files into the media store."""

    def __init__(self, bot: Bot, media: MediaStore) -> None:
        self.bot = bot
        self.media = media

    async def message_event(self, message: Message, update_id: int) -> Event | None:
        """The event for a message, or None when the bot should not answer it."""
        user = message.from_user
        if user is None or user.is_bot:
            return None
        chat = message.chat
        event = base_event(user, chat.id, chat.type, update_id)
        text = message.text
        if text is not None:
            parsed = parse_command(text)
            if parsed is not None:
                if not addressed_to(text, self.bot.username):
                    return None
                name, args = parsed
                return replace(event, kind=EventKind.COMMAND, text=text, command=name, args=args)
        # In groups: commands (above), and replies to the bot's own messages.
        if event.is_group and not replies_to_bot(message, self.bot.id):
            return None
        if text is not None:
            return replace(event, text=text)
        if message.location is not None:
            place = Location(message.location.latitude, message.location.longitude)
            return replace(event, kind=EventKind.LOCATION, location=place)
        media = media_of(message)
        if media is not None:
            return await self._attachment(message, event, media)
        if message.effective_attachment is not None:
            return replace(event, kind=EventKind.UNSUPPORTED)
        return None  # a service message (pinned, member joined, ...): nothing to answer

    async def _attachment(self, message: Message, event: Event, media: Media) -> Event:
        """A file, checked against the limit by its stated size and not downloaded: the
        dialogue fetches it only when a step wants it (`Context.take_file`)."""
        event = replace(event, kind=EventKind.ATTACHMENT, text=message.caption or "")
        if media.size is not None and media.size > self.media.max_bytes:
            return replace(event, attachment_error=TOO_LARGE)

        async def fetch() -> bytes:
            await self.typing(message.chat_id)
            try:
                file = await self.bot.get_file(media.file_id)
                return bytes(await file.download_as_bytearray())
            except BadRequest as exc:
                if "too big" in exc.message.lower():
                    raise MediaTooLarge(exc.message) from exc
                log.warning("file download refused: %s", exc.message)
                raise FileUnavailable(exc.message) from exc
            except TelegramError as exc:
                log.warning("file download failed: %s", exc)
                raise FileUnavailable(str(exc)) from exc

        return replace(event, file=IncomingFile(media.kind, media.name, media.mime, fetch))

    async def typing(self, chat_id: int) -> None:
        """Show "typing…" while something slow happens; never fails the update."""
        try:
            await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:
            log.debug("chat action failed: %s", exc)
