"""Sending rendered replies to Telegram: flood limits, retries, the location keyboard.

Direct replies and the outbox worker send through the same `TelegramSender` and so
through the same `ChatLimiter`: the outbox's messages count as bulk (30 a second overall),
answers do not, and in a chat an answer goes before the bulk messages waiting for it.
Errors map to the outbox's vocabulary: RetryAfter -> RetryLater, Forbidden ->
Unreachable, TimedOut/NetworkError -> TransientFailure. Once part of a delivery has gone
out, a flood-control answer or a network error is waited out and retried here instead, so
that the outbox never sends the first messages of a row twice.

The "send my location" reply keyboard (see `telegram_render`) is removed with the next
message to that chat; when that message has inline buttons, it goes out with
ReplyKeyboardRemove and gets its buttons by an edit, so the person still sees one message.
Which chats show that keyboard is kept in memory only: after a restart it stays until the
next location question (it hides itself once used).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from bot.core.app import Core
from bot.core.events import AttachmentKind, Reply
from bot.core.i18n import ContentError
from bot.delivery.outbox import RetryLater, TransientFailure, Unreachable
from bot.delivery.pacing import ChatLimiter
from bot.logs import ACTIVITY
from bot.storage import repos
from bot.transports.telegram_render import Markup, Part, render

log = logging.getLogger(__name__)

TRANSPORT = "telegram"
RETRIES = 3
# A longer flood wait in the middle of a direct reply is left to the error log.
MAX_INLINE_WAIT = 60.0
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
NEWEST_KEPT = 100_000
Send = Callable[[int], Awaitable[Message]]


def retry_seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after in seconds, whatever PTB's int/timedelta setting."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@dataclass
class _Progress:
    """One delivery: where it goes (a group may migrate) and how much has gone out."""

    chat: int
    outbox: bool
    sent: int = 0


class TelegramSender:
    """Renders and sends replies; the outbox worker's `Sender` for Telegram."""

    transport = TRANSPORT
    # Every message part passes the shared limiter here, so the worker does not add its own.
    limits_itself = True

    def __init__(self, core: Core, limiter: ChatLimiter) -> None:
        self.core = core
        self.limiter = limiter
        self.bot: Bot | None = None
        # Private chats that show the "send my location" keyboard (removed by the next message).
        self.location_keyboards: set[int] = set()
        # The newest message id seen in each chat (the person's or the bot's), in memory:
        # after a restart a pressed question is ticked and the next one comes below it.
        self.newest: dict[int, int] = {}

    def saw(self, chat: int, message_id: int) -> None:
        """A message appeared in the chat."""
        if len(self.newest) > NEWEST_KEPT and chat not in self.newest:
            self.newest.clear()  # long-idle chats fall back to a new message; memory stays flat
        self.newest[chat] = max(self.newest.get(chat, 0), message_id)

    def is_newest(self, chat: int, message_id: int) -> bool:
        """Whether nothing has been said in the chat since this message."""
        return self.newest.get(chat) == message_id

    # -- the outbox worker's entry point ----------------------------------------------------

    async def deliver(self, chat_id: str, replies: Sequence[Reply]) -> str:
        chat = int(chat_id)
        last = await self.send(chat, replies, outbox=True)
        if chat > 0:
            # A private chat: a number or label typed back picks one of these options, and
            # a dialogue the message interrupted shows its open question again.
            with_choices = [reply for reply in replies if reply.choices]
            choices = with_choices[-1].choices if with_choices else []
            again = await self.core.delivered(TRANSPORT, chat_id, chat_id, choices)
            if again:
                last = await self.send(chat, again) or last
        return "" if last is None else str(last.message_id)

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self,
        chat: int,
        replies: Sequence[Reply],
        *,
        outbox: bool = False,
        reply_to: int | None = None,
    ) -> Message | None:
        """Send the replies in order; return the last message sent."""
        bot = self.bot
        if bot is None:
            raise TransientFailure("the Telegram transport is not started")
        progress = _Progress(chat, outbox)
        last: Message | None = None
        for reply in replies:
            share = ""
            if reply.request_location and chat > 0:
                share = reply.share_label or await self._share_label(chat)
            first: Message | None = None
            for part in render(reply, share):
                thread = first.message_id if part.threaded and first is not None else None
                if thread is None and progress.sent == 0:
                    thread = reply_to
                keep = bool(share)  # this reply shows the location keyboard
                message = await self._send_part(bot, part, thread, progress, keep)
                if message is not None:
                    first = first or message
                    last = message
        return last

    async def _send_part(
        self, bot: Bot, part: Part, thread: int | None, progress: _Progress, keep: bool
    ) -> Message | None:
        markup: Markup | ReplyKeyboardRemove | None = part.markup
        add_later: InlineKeyboardMarkup | None = None
        removing = not keep and progress.chat in self.location_keyboards
        if removing:
            # A message carries one kind of keyboard: remove the location keyboard with it
            # and add the inline keyboard by an edit (the person sees one message).
            if isinstance(part.markup, InlineKeyboardMarkup):
                add_later = part.markup
            markup = ReplyKeyboardRemove()
        send = await self._sender(bot, part, markup, thread)
        if send is None:
            return None
        message = await self._call(send, progress)
        if isinstance(part.markup, ReplyKeyboardMarkup):
            self.location_keyboards.add(progress.chat)
        elif removing:
            self.location_keyboards.discard(progress.chat)
        if add_later is not None:
            try:
                await bot.edit_message_reply_markup(
                    progress.chat, message.message_id, reply_markup=add_later
                )
            except TelegramError as exc:
                log.warning("adding buttons to message %s failed: %s", message.message_id, exc)
        return message

    async def _sender(
        self, bot: Bot, part: Part, markup: Markup | ReplyKeyboardRemove | None, thread: int | None
    ) -> Send | None:
        """The API call for one part, as a function of the chat id (groups may migrate)."""
        reply = (
            None if thread is None else ReplyParameters(thread, allow_sending_without_reply=True)
        )
        if part.kind == "location" and part.location is not None:
            latitude, longitude = part.location.latitude, part.location.longitude
            return lambda chat: bot.send_location(
                chat, latitude, longitude, reply_markup=markup, reply_parameters=reply
            )
        attachment = part.attachment
        data = b""
        if attachment is not None:
            try:
                data = await asyncio.to_thread(self.core.media.read, attachment.sha256)
            except OSError:
                log.warning("media %s is gone; not sent", attachment.sha256[:12])
                attachment = None
        if attachment is None:
            if not part.html:
                return None
            # A text, or the caption of a file that is gone: the words still go out.
            return lambda chat: bot.send_message(
                chat,
                part.html,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                reply_parameters=reply,
                link_preview_options=NO_PREVIEW,
            )
        common: dict[str, Any] = {
            "filename": attachment.file_name or attachment.sha256[:12],
            "caption": part.html or None,
            "parse_mode": ParseMode.HTML if part.html else None,
            "reply_markup": markup,
            "reply_parameters": reply,
        }

        async def as_document(chat: int) -> Message:
            return await bot.send_document(chat, data, **common)

        async def photo(chat: int) -> Message:
            try:
                return await bot.send_photo(chat, data, **common)
            except BadRequest as exc:
                # Too large or odd dimensions for a photo: the file still goes out.
                log.info("photo refused (%s); sending it as a document", exc.message)
                return await as_document(chat)

        async def voice(chat: int) -> Message:
            return await bot.send_voice(chat, data, **common)

        async def video(chat: int) -> Message:
            return await bot.send_video(chat, data, **common)

        senders = {
            AttachmentKind.PHOTO: photo,
            AttachmentKind.VOICE: voice,
            AttachmentKind.VIDEO: video,
        }
        return senders.get(attachment.kind, as_document)

    async def _call(self, send: Send, progress: _Progress) -> Message:
        """One API call within the flood limits, with the error mapping of the module doc."""
        attempt = 0
        while True:
            # The outbox's messages are bulk; an answer to someone who just wrote is not.
            await self.limiter.acquire(str(progress.chat), bulk=progress.outbox)
            nothing_sent = progress.outbox and progress.sent == 0
            try:
                message = await send(progress.chat)
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                ACTIVITY.flood_wait()
                # After an answer's 429 only its chat waits; after a bulk one, everything.
                self.limiter.pause(wait, None if progress.outbox else str(progress.chat))
                if nothing_sent or attempt >= RETRIES or wait > MAX_INLINE_WAIT:
                    raise RetryLater(wait) from exc
                log.info("flood control in chat: waiting %.0f s", wait)
                await asyncio.sleep(wait)
            except Forbidden as exc:
                raise Unreachable(exc.message) from exc
            except ChatMigrated as exc:
                log.warning(
                    "chat %s became supergroup %s: update the configuration",
                    progress.chat,
                    exc.new_chat_id,
                )
                progress.chat = exc.new_chat_id
            except BadRequest as exc:
                if "chat not found" in exc.message.lower():
                    raise Unreachable(exc.message) from exc
                raise
            except NetworkError as exc:  # TimedOut is one, too
                if nothing_sent or attempt >= RETRIES:
                    raise TransientFailure(exc.message) from exc
                await asyncio.sleep(0.5 * 2**attempt)
            else:
                progress.sent += 1
                self.saw(progress.chat, message.message_id)
                return message
            attempt += 1

    async def _share_label(self, chat: int) -> str:
        """The "send my location" label in the language of the person in this chat."""
        async with self.core.sessions() as session:
            user = await repos.get_user(session, TRANSPORT, str(chat))
        language = user.language if user is not None else self.core.settings.bot.default_language
        try:
            return self.core.content.text(language, "keyboard.share_location")
        except ContentError:
            return "📍"
