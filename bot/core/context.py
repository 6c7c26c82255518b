"""The small, typed surface that feature handlers see."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.config import Settings
from bot.core.events import Attachment, Choice, Event, FileUnavailable, Location, Reply
from bot.core.i18n import Content
from bot.core.media import MediaStore, MediaTooLarge
from bot.storage import repos
from bot.storage.models import User, utcnow

if TYPE_CHECKING:
    from bot.core.app import Core


@dataclass(frozen=True, slots=True)
class Destination:
    """A chat the bot can post to on some transport."""

    transport: str
    chat_id: str
    user_id: int | None = None


@dataclass
class Context:
    """Everything one handler call needs: the event, the person, their state, and tools."""

    core: Core
    # The event's connection and transaction. Never open a second transaction while
    # handling an event: on SQLite there is one connection, and it would wait for itself.
    connection: AsyncConnection
    event: Event
    person: repos.Person
    replies: list[Reply] = field(default_factory=list)
    # Conversation-log rows, written with the state when the event is done.
    log: list[dict[str, Any]] = field(default_factory=list)
    # Set when the person's data was just erased: nothing more is stored for this event.
    erased: bool = False
    # Set once the open dialogue has shown its question (or answered) for this event; when
    # not, the Core shows it again after the other answer (an interruption).
    question_shown: bool = False
    _session: AsyncSession | None = None

    @property
    def user(self) -> User:
        return self.person.user

    @property
    def state(self) -> repos.State:
        return self.person.state

    @property
    def session(self) -> AsyncSession:
        """An ORM session in the event's transaction, opened the first time it is asked for
        (most events need none); the person is in it."""
        if self._session is None:
            self._session = AsyncSession(bind=self.connection, expire_on_commit=False)
            self.person.attach(self._session)
        return self._session

    async def flush_session(self) -> None:
        if self._session is not None:
            await self._session.flush()

    async def close_session(self) -> None:
        """Let the session go; the transaction stays open (call `flush_session` first)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def content(self) -> Content:
        return self.core.content

    @property
    def media(self) -> MediaStore:
        return self.core.media

    @property
    def lang(self) -> str:
        return self.user.language

    @property
    def consented(self) -> bool:
        return self.user.consent_at is not None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.bot.timezone)

    def now(self) -> datetime:
        return utcnow()

    def t(self, key: str, **values: Any) -> str:
        """A text from content in the user's language."""
        return self.content.text(self.lang, key, **values)

    def options(self, key: str, prefix: str) -> list[Choice]:
        """An option list from content as choices whose ids are `prefix` + option id."""
        return [
            Choice(f"{prefix}{oid}", label) for oid, label in self.content.options(self.lang, key)
        ]

    def say(
        self,
        text: str,
        *,
        title: str = "",
        choices: list[Choice] | None = None,
        request_location: bool = False,
        location: Location | None = None,
    ) -> Reply:
        """Queue a reply to the person who sent the event."""
        reply = Reply(
            text=text,
            title=title,
            choices=list(choices or []),
            request_location=request_location,
            share_label=self.t("keyboard.share_location") if request_location else "",
            location=location,
        )
        self.replies.append(reply)
        return reply

    async def take_file(self) -> Attachment | None:
        """The file of the event, fetched from the platform and stored now (a step wants
        it); None with `event.attachment_error` set when it cannot be taken."""
        event = self.event
        if event.attachment is not None or event.file is None:
            return event.attachment
        incoming = event.file
        try:
            data = await incoming.fetch()
            attachment = await self.media.save(
                data, incoming.kind, incoming.file_name, incoming.mime_type
            )
        except FileUnavailable:
            self.event = dataclasses.replace(event, file=None, attachment_error="unavailable")
            return None
        except MediaTooLarge:
            self.event = dataclasses.replace(event, file=None, attachment_error="too_large")
            return None
        self.event = dataclasses.replace(event, file=None, attachment=attachment)
        return attachment

    def toast(self, text: str) -> Reply:
        """A short notice about the event itself (a stale button): Telegram shows it on the
        pressed button, elsewhere it is a message."""
        reply = Reply(text=text, toast=True)
        self.replies.append(reply)
        return reply

    # -- dialogue state -------------------------------------------------------------------

    @property
    def flow(self) -> str:
        return self.state.flow

    def start_flow(self, name: str, data: dict[str, Any] | None = None) -> None:
        self.state.flow = name
        self.state.data = dict(data or {})

    def update_data(self, **values: Any) -> None:
        # Reassign so that SQLAlchemy sees the JSON column change.
        self.state.data = {**self.state.data, **values}

    def end_flow(self) -> None:
        self.state.flow = ""
        self.state.data = {}

    # -- shared state ---------------------------------------------------------------------

    @property
    def is_coordinator(self) -> bool:
        """Named in the config (checked afresh), or granted by an admin (see Core)."""
        return self.core.is_coordinator(self.user)

    async def audit(self, action: str, subject: str = "", **details: Any) -> None:
        await repos.audit(self.session, self.user.id, action, subject[:128], details)

    async def send_to(
        self,
        destination: Destination,
        replies: list[Reply],
        kind: str,
        *,
        subject_user_id: int | None = None,
    ) -> None:
        """Queue messages for another chat; they are stored before anything is sent.

        `subject_user_id`: the person whose data the messages carry (the reporter, for a
        report's copy to the coordinators), so that erasing them reaches the copy too."""
        await repos.queue_outbox(
            self.session,
            transport=destination.transport,
            chat_id=destination.chat_id,
            user_id=destination.user_id,
            kind=kind,
            replies=replies,
            subject_user_id=subject_user_id,
        )

    async def coordinator_destinations(self) -> list[Destination]:
        return await self.core.coordinator_destinations(self.session)

    async def run_command(self, name: str, args: str = "") -> None:
        """Run another command's handler as if the person had typed it."""
        await self.core.run_command(self, name, args)

    async def run_choice(self, choice: str) -> None:
        """Handle a choice as if the person had pressed it."""
        await self.core.run_choice(self, choice)
