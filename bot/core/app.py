"""The dialogue core: one event in, stored state and replies out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.core.context import Destination
from bot.core.dispatch import Dispatcher
from bot.core.doors import Door
from bot.core.events import Choice, Event, Reply
from bot.core.i18n import Content
from bot.core.limits import FloodGate
from bot.core.media import MediaStore
from bot.core.pipeline import Pipeline
from bot.core.router import Router
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage, User, utcnow

log = logging.getLogger(__name__)


class Core(Dispatcher):
    """Routes neutral events to feature handlers; every step is stored before it is answered."""

    def __init__(
        self,
        settings: Settings,
        content: Content,
        sessions: async_sessionmaker[AsyncSession],
        routers: Iterable[Router],
        doors: Callable[[Settings], list[Door]],
    ) -> None:
        super().__init__(routers)
        self.settings = settings
        self.content = content
        self.sessions = sessions
        self.engine: AsyncEngine = sessions.kw["bind"]
        self.media = MediaStore(
            settings.media_dir, int(settings.limits.max_attachment_mb * 1024 * 1024)
        )
        self._doors = doors
        self.pipeline = Pipeline(self)

    # -- doors: who coordinates, who administers, where reports go ----------------------------

    def doors(self) -> list[Door]:
        """The transports of this deployment, read from the settings as they are now."""
        return self._doors(self.settings)

    def door(self, name: str) -> Door | None:
        return next((door for door in self.doors() if door.name == name), None)

    def is_configured_coordinator(self, transport: str, platform_id: str) -> bool:
        door = self.door(transport)
        return door is not None and platform_id in door.coordinators

    def is_coordinator(self, user: User) -> bool:
        """Named in the config (checked afresh, so removing a name there takes effect), or
        granted by an admin with /coordinators (the `coordinator` column)."""
        return user.coordinator or self.is_configured_coordinator(user.transport, user.platform_id)

    def is_admin(self, transport: str, platform_id: str) -> bool:
        door = self.door(transport)
        return door is not None and platform_id in door.admins

    async def coordinator_destinations(
        self, connection: AsyncConnection | AsyncSession
    ) -> list[Destination]:
        """Where reports go: on every transport of the deployment, the coordinators' group
        where one is set, otherwise each coordinator personally (named in the config or
        added by an admin)."""
        granted = await repos.granted_coordinators(connection)
        found: list[Destination] = []
        for door in self.doors():
            if not door.active:
                continue
            if door.group:
                found.append(Destination(door.name, door.group))
                continue
            people: dict[str, str] = dict.fromkeys(door.coordinators, "")
            people.update((pid, chat) for t, pid, chat in granted if t == door.name)
            found.extend(Destination(door.name, chat or pid) for pid, chat in people.items())
        return found

    def admin_destinations(self) -> list[Destination]:
        """The admins' own chats on every transport of the deployment."""
        return [
            Destination(door.name, admin)
            for door in self.doors()
            if door.active
            for admin in door.admins
        ]

    async def tell_admins(
        self, session: AsyncSession, key: str, dedupe: str | None = None, **values: str
    ) -> None:
        """Queue a notice for the admins in the deployment's language (something an
        operator must fix, e.g. a report that reached no coordinator). `dedupe` keeps the
        same notice from being queued twice."""
        lang = self.settings.bot.default_language
        notice = Reply(
            self.content.text(lang, f"admin.notice_{key}", **values),
            title=self.content.text(lang, "admin.notice_title"),
        )
        for destination in self.admin_destinations():
            where = f"{destination.transport}:{destination.chat_id}"
            once = None if dedupe is None else f"{dedupe}:{where}"[:128]
            if once is not None and await repos.outbox_key_taken(session, once):
                continue
            await repos.queue_outbox(
                session,
                transport=destination.transport,
                chat_id=destination.chat_id,
                user_id=None,
                kind="notice",
                replies=[notice],
                dedupe_key=once,
            )

    async def undeliverable(self, row: OutboxMessage, reason: str) -> None:
        """A report could not be delivered to a coordinators' chat: tell the admins, once a
        day per chat (no content of the report, only where it failed)."""
        day = utcnow().date().isoformat()
        async with transaction(self.sessions) as session:
            await self.tell_admins(
                session,
                "delivery_failed",
                dedupe=f"undeliverable:{day}:{row.transport}:{row.chat_id}",
                transport=row.transport,
                chat=row.chat_id,
                reason=reason[:120],
            )

    # -- events in -------------------------------------------------------------------------

    async def handle(self, event: Event) -> list[Reply]:
        """Handle one event (see `bot.core.pipeline`); returns the replies to show."""
        return await self.pipeline.handle(event)

    async def delivered(
        self, transport: str, platform_id: str, chat_id: str, choices: list[Choice]
    ) -> list[Reply]:
        """A queued message (an alert, a notice) reached a person's chat. Remember its
        choices, so that a number or label typed back picks them; when the person is in a
        dialogue, return its open question to send again under the message — the
        dialogue's answers keep the numbers, the message's choices answer to their labels."""
        return await self.pipeline.delivered(transport, platform_id, chat_id, choices)

    @property
    def flood(self) -> FloodGate:
        return self.pipeline.flood
