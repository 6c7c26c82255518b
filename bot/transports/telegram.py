"""The Telegram transport: python-telegram-bot in, neutral events to the core, replies out.

Translation only (see `telegram_inbound` and `telegram_render`). Long polling by
default; webhook mode runs PTB's own webhook server behind a reverse proxy. Updates of
one person are handled one after another, in order; different people concurrently.
A failed update is logged with its update id and never stops the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import hashlib
import logging
import weakref
from typing import Any
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.core.events import Event, Reply
from bot.core.i18n import LANGUAGES, ContentError
from bot.core.router import COORDINATOR, CommandSpec
from bot.delivery.pacing import ChatLimiter, Limits
from bot.runtime import Runtime
from bot.transports.telegram_http import AiohttpRequest
from bot.transports.telegram_inbound import Inbound, press_event
from bot.transports.telegram_outbound import NO_PREVIEW, TelegramSender
from bot.transports.telegram_render import escape, inline_keyboard, plain_text, render

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]
ALLOWED_UPDATES = ["message", "callback_query"]
POLL_TIMEOUT = dtm.timedelta(seconds=10)
DESCRIPTION_LIMIT = 256
TOAST_LIMIT = 200  # answerCallbackQuery's text
CONNECTIONS = 32


def pressed_label(message: Message, data: str) -> str:
    """The label of the button with callback data `data` on `message`."""
    markup = message.reply_markup
    for row in markup.inline_keyboard if markup is not None else ():
        for found in row:
            if found.callback_data == data:
                return found.text
    return ""


def same_question(message: Message, reply: Reply) -> bool:
    """Whether `reply` is the pressed question shown again (only its buttons changed)."""
    shown = plain_text(reply).strip("\n")
    return bool(reply.choices) and not reply.request_location and message.text == shown


# httpx logs every request URL at INFO, and Bot API URLs contain the token: keep it out of
# verbose logs unless someone configured that logger on purpose.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)


class TelegramTransport:
    """A running Telegram bot; `sender` serves the outbox worker."""

    name = "telegram"
    # 30 bulk messages a second overall; one a second per private chat, after a burst of
    # three; 20 a minute per group.
    limits = Limits(30, 1, chat_burst=3, group_per_minute=20)

    def __init__(self, runtime: Runtime, limits: Limits | None = None) -> None:
        self.runtime = runtime
        self.core = runtime.core
        self.settings = runtime.settings.telegram
        if limits is not None:
            self.limits = limits
        token = self.settings.token
        if token is None:
            raise ValueError("telegram.token is not set (SICHERHEITSBOT_TELEGRAM__TOKEN)")
        self.token = token.get_secret_value()
        builder = ApplicationBuilder().token(self.token).job_queue(None)
        # Requests over aiohttp (see telegram_http). 32 connections carry a few hundred
        # answers a second even at Telegram's round trip. Two for getUpdates: the last call
        # on stop (which acknowledges the updates already fetched) must not wait for the
        # cancelled long poll's connection.
        builder = builder.request(AiohttpRequest(CONNECTIONS))
        builder = builder.get_updates_request(AiohttpRequest(2))
        builder = builder.base_url(self.settings.base_url)
        self.app: App = builder.base_file_url(self.settings.base_file_url).build()
        self.app.add_handler(TypeHandler(Update, self._on_update))
        self.app.add_error_handler(self._on_error)
        # One limiter for direct replies and the outbox worker's deliveries.
        self.limiter = ChatLimiter(self.limits)
        self.sender = TelegramSender(self.core, self.limiter)
        self.inbound = Inbound(self.app.bot, self.core.media)
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.app.initialize()
        try:
            self.sender.bot = self.app.bot
            await self.publish_commands()
            await self.app.start()
            updater = self.app.updater
            assert updater is not None
            if self.settings.mode == "webhook":
                await updater.start_webhook(
                    listen=self.settings.webhook_listen,
                    port=self.settings.webhook_port,
                    url_path=urlsplit(self.settings.webhook_url).path.strip("/"),
                    webhook_url=self.settings.webhook_url,
                    secret_token=self.webhook_secret(),
                    allowed_updates=ALLOWED_UPDATES,
                )
            else:
                await self.app.bot.delete_webhook()
                await updater.start_polling(
                    timeout=POLL_TIMEOUT,
                    allowed_updates=ALLOWED_UPDATES,
                    error_callback=self._polling_failed,
                )
        except BaseException:
            await self.stop()
            raise
        log.info("telegram: @%s running (%s)", self.app.bot.username, self.settings.mode)

    async def stop(self) -> None:
        """Stop fetching, finish the updates already fetched, then close."""
        updater = self.app.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
        self.sender.bot = None

    @property
    def connected(self) -> bool:
        """Running and taking updates (long poll or webhook server), for /readyz."""
        updater = self.app.updater
        return self.app.running and updater is not None and updater.running

    def webhook_secret(self) -> str:
        """The configured secret, else one derived from the token (the same on every
        instance behind a load balancer, and never guessable without the token)."""
        if self.settings.webhook_secret is not None:
            return self.settings.webhook_secret.get_secret_value()
        return hashlib.sha256(f"sicherheitsbot-webhook:{self.token}".encode()).hexdigest()

    # -- command menus --------------------------------------------------------------------

    async def publish_commands(self) -> None:
        """Command menus per language; coordinator commands only in coordinator chats."""
        specs = [spec for spec in self.core.commands.values() if spec.listed]
        everyone = [spec for spec in specs if spec.roles is None]
        staff = [spec for spec in specs if spec.roles is not None and COORDINATOR in spec.roles]
        chats = [*self.settings.coordinators]
        if self.settings.coordinator_chat_id is not None:
            chats.append(self.settings.coordinator_chat_id)
        default = self.runtime.settings.bot.default_language
        for code in ("", *LANGUAGES):
            language = code or default
            public = self._bot_commands(everyone, language)
            await self._set_commands(public, None, code)
            for chat in chats:
                coordinator = public + self._bot_commands(staff, language)
                await self._set_commands(coordinator, chat, code)

    def _bot_commands(self, specs: list[CommandSpec], language: str) -> list[BotCommand]:
        commands = []
        for spec in specs:
            try:
                description = self.core.content.text(language, f"commands.{spec.name}")
            except ContentError:
                log.warning("no description commands.%s in content", spec.name)
                description = f"/{spec.name}"
            commands.append(BotCommand(spec.name, description[:DESCRIPTION_LIMIT]))
        return commands

    async def _set_commands(self, commands: list[BotCommand], chat: int | None, code: str) -> None:
        scope = None if chat is None else BotCommandScopeChat(chat)
        try:
            await self.app.bot.set_my_commands(commands, scope=scope, language_code=code or None)
        except TelegramError as exc:
            # E.g. "chat not found" for a coordinator who has not opened the bot yet.
            log.warning("set_my_commands for %s/%s failed: %s", chat or "all", code or "-", exc)

    # -- updates ----------------------------------------------------------------------------

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Start handling in the background, in order per person."""
        user = update.effective_user
        if user is None or (update.message is None and update.callback_query is None):
            return
        lock = self._locks.get(user.id)
        if lock is None:
            lock = self._locks[user.id] = asyncio.Lock()
        # The task takes the lock before its first await, so tasks queue in arrival order.
        self.app.create_task(self._handle(update, lock), update=update)

    async def _handle(self, update: Update, lock: asyncio.Lock) -> None:
        async with lock:
            if update.callback_query is not None:
                await self._on_press(update.callback_query, update.update_id)
            elif update.message is not None:
                await self._on_message(update.message, update.update_id)

    async def _on_press(self, query: CallbackQuery, update_id: int) -> None:
        event = press_event(query, update_id)
        if event is None or query.message is None:
            with contextlib.suppress(TelegramError):
                await query.answer()
            return
        chat = query.message.chat
        replies = await self.core.handle(event)
        toasts = [reply for reply in replies if reply.toast]
        replies = [reply for reply in replies if not reply.toast]
        # The calls that do not decide what is sent go out beside the answer, not before
        # it: on Telegram's round trip each would add a tenth of a second or more.
        beside = [self._answer_query(query, toasts[0].text if toasts else None)]
        # The pressed message keeps its text and shows what was picked, without buttons, so
        # nothing is pressed twice. In a group the buttons may be meant for someone else
        # (triage): only a coordinator's press takes them away.
        private = chat.type == ChatType.PRIVATE
        mine = private or self.core.is_configured_coordinator(self.name, event.user_id)
        message = query.message
        if isinstance(message, Message) and mine and not toasts:  # not too old to edit
            if replies and await self._in_place(query, message, replies[0]):
                replies = replies[1:]
            else:
                beside.append(self._tick(query, message))
        await asyncio.gather(self.sender.send(chat.id, replies), *beside)

    @staticmethod
    async def _answer_query(query: CallbackQuery, toast: str | None) -> None:
        try:
            await query.answer(text=toast[:TOAST_LIMIT] if toast else None)
        except TelegramError as exc:
            log.debug("answering callback query failed: %s", exc)

    async def _in_place(self, query: CallbackQuery, message: Message, reply: Reply) -> bool:
        """Show `reply` in the pressed message when it is the next page, the same question
        with new buttons (a tick set in a multiple choice), or the next question while
        the pressed message is the newest in the chat (below it, the person would not see
        it change); False otherwise."""
        if reply.in_place and await self._turn_page(query, message, reply):
            return True
        if same_question(message, reply):
            with contextlib.suppress(TelegramError):
                await query.edit_message_reply_markup(reply_markup=inline_keyboard(reply.choices))
                return True
        private = message.chat.type == ChatType.PRIVATE  # a group's others are not all seen
        if (
            private
            and reply.next_question
            and self.sender.is_newest(message.chat_id, message.message_id)
        ):
            picked = pressed_label(message, query.data or "")
            lead = f"✓ {escape(picked)}\n\n" if picked else ""
            return await self._turn_page(query, message, reply, lead)
        return False

    @staticmethod
    async def _tick(query: CallbackQuery, message: Message) -> None:
        """Show "✓ label" under the pressed question, without its buttons."""
        picked = pressed_label(message, query.data or "")
        try:
            if message.text and picked:
                await query.edit_message_text(
                    f"{message.text_html}\n\n✓ {escape(picked)}",
                    parse_mode=ParseMode.HTML,
                    reply_markup=None,
                    link_preview_options=NO_PREVIEW,
                )
            elif message.caption and picked:  # a report sent with its photo
                await query.edit_message_caption(
                    f"{message.caption_html}\n\n✓ {escape(picked)}",
                    parse_mode=ParseMode.HTML,
                    reply_markup=None,
                )
            else:
                await query.edit_message_reply_markup(reply_markup=None)
        except TelegramError as exc:
            log.debug("showing the pressed choice failed: %s", exc)

    async def _turn_page(
        self, query: CallbackQuery, message: Message, reply: Reply, lead: str = ""
    ) -> bool:
        """Show `reply` in the pressed message (the next page), after `lead` (HTML); False
        when it cannot be."""
        parts = render(reply)
        only = parts[0] if len(parts) == 1 else None
        if only is None or only.kind != "text" or not message.text:
            return False
        if reply.request_location:
            return False  # the location keyboard comes with a new message only
        if message.chat_id in self.sender.location_keyboards:
            return False  # a new message goes out, and takes that keyboard away
        try:
            await query.edit_message_text(
                lead + only.html,
                parse_mode=ParseMode.HTML,
                reply_markup=only.markup if isinstance(only.markup, InlineKeyboardMarkup) else None,
                link_preview_options=NO_PREVIEW,
            )
        except TelegramError as exc:
            log.debug("turning the page failed: %s", exc)
            return False
        return True

    async def _on_message(self, message: Message, update_id: int) -> None:
        self.sender.saw(message.chat_id, message.message_id)
        event = await self.inbound.message_event(message, update_id)
        if event is None:
            return
        # In groups the answer replies to the message it answers.
        await self._answer(event, message.chat_id, message.message_id if event.is_group else None)

    async def _answer(self, event: Event, chat_id: int, reply_to: int | None) -> None:
        replies = await self.core.handle(event)
        await self.sender.send(chat_id, replies, reply_to=reply_to)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        error = context.error
        log.error(
            "telegram update %s failed: %s",
            update_id,
            type(error).__name__,
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )

    @staticmethod
    def _polling_failed(error: TelegramError) -> None:
        log.warning("telegram polling failed, retrying: %s", error)
