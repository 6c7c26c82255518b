"""Repository functions: the only place that builds queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.instrumentation import ClassManager, manager_of_class

from bot.storage.db import make_durable
from bot.storage.models import (
    AuditEntry,
    ConversationEntry,
    DialogueState,
    Media,
    MediaLink,
    OutboxMessage,
    Report,
    ReportCounter,
    User,
    utcnow,
)


class Message(Protocol):
    """What the outbox stores of a message (the core's `Reply`): its JSON form."""

    def to_json(self) -> dict[str, Any]: ...


# -- users and state ----------------------------------------------------------------------


async def get_user(session: AsyncSession, transport: str, platform_id: str) -> User | None:
    return await session.scalar(
        select(User).where(User.transport == transport, User.platform_id == platform_id)
    )


async def get_or_create_user(
    session: AsyncSession, transport: str, platform_id: str, chat_id: str, language: str
) -> User:
    user = await get_user(session, transport, platform_id)
    if user is None:
        user = User(
            transport=transport,
            platform_id=platform_id,
            chat_id=chat_id,
            language=language,
            active=True,
            coordinator=False,
        )
        session.add(user)
        await session.flush()
    return user


# -- the per-event path: Core statements built once ---------------------------------------
# Every event loads its person and dialogue state, logs itself and its replies and saves
# the state. Through the ORM's queries and unit of work that was most of an update's cost;
# these statements are compiled once, and the person is put into the session as loaded.

_USERS: Table = User.__table__  # type: ignore[assignment]
_STATES: Table = DialogueState.__table__  # type: ignore[assignment]
_LOG: Table = ConversationEntry.__table__  # type: ignore[assignment]
_USER_KEYS = [column.key for column in _USERS.c]
_STATE_KEYS = ["id", "flow", "data", "choices"]
_LOAD_PERSON = (
    select(*_USERS.c, *(_STATES.c[key].label(f"state_{key}") for key in _STATE_KEYS))
    .select_from(
        _USERS.outerjoin(
            _STATES,
            and_(_STATES.c.user_id == _USERS.c.id, _STATES.c.chat_id == bindparam("chat_id")),
        )
    )
    .where(
        _USERS.c.transport == bindparam("transport"),
        _USERS.c.platform_id == bindparam("platform_id"),
    )
)


def _upsert_state(insert_for: Any) -> Any:
    # An upsert: a delivery's `remember_choices` may have created the row meanwhile.
    statement = insert_for(_STATES)
    return statement.on_conflict_do_update(
        index_elements=[_STATES.c.user_id, _STATES.c.chat_id],
        set_={key: statement.excluded[key] for key in ("flow", "data", "choices", "updated_at")},
    ).returning(_STATES.c.id)


_INSERT_STATE = {"sqlite": _upsert_state(sqlite_insert), "postgresql": _upsert_state(pg_insert)}
_UPDATE_STATE = (
    update(_STATES)
    .where(_STATES.c.id == bindparam("state_id"))
    .values(
        flow=bindparam("flow"),
        data=bindparam("data"),
        choices=bindparam("choices"),
        updated_at=bindparam("updated_at"),
    )
)
_INSERT_LOG = insert(_LOG)
_INSERT_USER = insert(_USERS).returning(*_USERS.c)
# `last_seen_at` is written when it is older than this, not on every event.
LAST_SEEN_GRANULARITY = timedelta(minutes=15)


@dataclass(slots=True)
class State:
    """Where a person stands in one chat (a `dialogue_states` row): `write_event` saves it."""

    user_id: int
    chat_id: str
    flow: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    # The choices last shown, so that "2" or a label typed back can be resolved.
    choices: list[Any] = field(default_factory=list)
    id: int | None = None


def _new_user(values: dict[str, Any]) -> User:
    """A `User` holding `values` as if loaded, outside any session: what the ORM's loader
    does, without the declarative constructor's cost (a tenth of it)."""
    global _user_manager
    if _user_manager is None:
        configure_mappers()
        _user_manager = manager_of_class(User)
    user: User = _user_manager.new_instance()
    user.__dict__.update(values)
    return user


_user_manager: ClassManager[User] | None = None


@dataclass
class Person:
    """Who sent an event, their dialogue state in its chat, and the user row as loaded.

    `user` is an ORM instance that is not in a session: `attach` puts it into one when a
    handler needs the ORM; otherwise `write_event` saves what changed."""

    user: User
    state: State
    loaded: dict[str, Any]

    def changes(self) -> dict[str, Any]:
        """The user's columns that differ from what was loaded."""
        return {
            key: value
            for key, value in ((key, getattr(self.user, key)) for key in _USER_KEYS)
            if value != self.loaded[key]
        }

    def attach(self, session: AsyncSession) -> None:
        """Make `user` persistent in `session` without a query, its changes pending."""
        changed = self.changes()
        for key in changed:
            setattr(self.user, key, self.loaded[key])
        make_transient_to_detached(self.user)
        session.add(self.user)
        for key, value in changed.items():
            setattr(self.user, key, value)
        self.loaded = {}  # from now on the session writes the user


async def load_person(
    connection: AsyncConnection,
    transport: str,
    platform_id: str,
    chat_id: str,
    user_chat_id: str,
    language: str,
) -> Person:
    """The person sending in `chat_id` (created if new, with `user_chat_id` as their
    private chat and `language`), and their state there. One query when they are known."""
    row = (
        await connection.execute(
            _LOAD_PERSON,
            {"transport": transport, "platform_id": platform_id, "chat_id": chat_id},
        )
    ).first()
    split = len(_USER_KEYS)
    if row is None:
        created = (
            await connection.execute(
                _INSERT_USER,
                {
                    "transport": transport,
                    "platform_id": platform_id,
                    "chat_id": user_chat_id,
                    "language": language,
                },
            )
        ).one()
        values: tuple[Any, ...] = (*created, *([None] * len(_STATE_KEYS)))
    else:
        values = tuple(row)
    loaded = dict(zip(_USER_KEYS, values[:split], strict=True))
    user = _new_user(loaded)
    state_id, flow, data, choices = values[split:]
    if state_id is None:
        state = State(user.id, chat_id)
    else:
        state = State(user.id, chat_id, flow, data, choices, state_id)
    now = utcnow()
    if user.last_seen_at is None or now - user.last_seen_at >= LAST_SEEN_GRANULARITY:
        user.last_seen_at = now
    return Person(user, state, loaded)


def write_event(
    connection: Connection, person: Person, log: list[dict[str, Any]], commit: bool = False
) -> None:
    """Save the person's state, the user's changed columns (unless a session writes the
    user) and the conversation-log rows, and commit if asked: one call, so one hand-off
    from the event loop."""
    state, now = person.state, utcnow()
    if person.loaded and (changes := person.changes()):
        connection.execute(update(_USERS).where(_USERS.c.id == person.user.id).values(changes))
        person.loaded.update(changes)
    values = {"flow": state.flow, "data": state.data, "choices": state.choices, "updated_at": now}
    if state.id is None:
        upsert = _INSERT_STATE[connection.dialect.name]
        state.id = connection.execute(
            upsert, {"user_id": state.user_id, "chat_id": state.chat_id, **values}
        ).scalar_one()
    else:
        connection.execute(_UPDATE_STATE, {"state_id": state.id, **values})
    if log:
        connection.execute(_INSERT_LOG, log)
    if commit:
        connection.commit()


def log_row(
    *,
    transport: str,
    chat_id: str,
    user_id: int | None,
    direction: str,
    kind: str,
    text: str | None,
) -> dict[str, Any]:
    """One conversation-log row for `write_event`."""
    return {
        "at": utcnow(),
        "transport": transport,
        "chat_id": chat_id,
        "user_id": user_id,
        "direction": direction,
        "kind": kind,
        "text": text,
    }


async def stale_drafts(
    session: AsyncSession, flow: str, before: datetime, transports: Sequence[str], limit: int = 500
) -> list[tuple[str, str, str]]:
    """(transport, platform id, chat id) of active people whose dialogue `flow` was last
    touched before `before`, on the given transports."""
    rows = await session.execute(
        select(User.transport, User.platform_id, DialogueState.chat_id)
        .join(User, User.id == DialogueState.user_id)
        .where(
            User.transport.in_(transports),
            DialogueState.flow == flow,
            DialogueState.updated_at < before,
            User.active.is_(True),
        )
        .limit(limit)
    )
    return [(str(t), str(p), str(c)) for t, p, c in rows.all()]


async def user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def private_chat(session: AsyncSession, transport: str, platform_id: str) -> str:
    """The person's private chat with the bot as remembered ('' when none is known)."""
    found = await session.scalar(
        select(User.chat_id).where(User.transport == transport, User.platform_id == platform_id)
    )
    return str(found or "")


async def remember_private_chat(
    session: AsyncSession, transport: str, platform_id: str, chat_id: str, language: str
) -> None:
    """Remember `chat_id` as the person's private chat, e.g. one the bot opened to deliver
    a report. Someone not known yet (a coordinator named in the config who never wrote)
    is added with only their id, that chat and `language`."""
    user = await get_or_create_user(session, transport, platform_id, chat_id, language)
    user.chat_id = chat_id


async def language_of(session: AsyncSession, transport: str, platform_id: str) -> str | None:
    """The language of a person who has written before; None for someone unknown."""
    found = await session.scalar(
        select(User.language).where(User.transport == transport, User.platform_id == platform_id)
    )
    return None if found is None else str(found)


_GRANTED = select(_USERS.c.transport, _USERS.c.platform_id, _USERS.c.chat_id).where(
    _USERS.c.coordinator.is_(True), _USERS.c.active.is_(True)
)


async def granted_coordinators(
    connection: AsyncConnection | AsyncSession,
) -> list[tuple[str, str, str]]:
    """(transport, platform id, private chat id) of the coordinators added by an admin."""
    rows = await connection.execute(_GRANTED)
    return [(str(t), str(p), str(c or "")) for t, p, c in rows.all()]


# -- audit ----------------------------------------------------------------------------------


async def audit(
    session: AsyncSession, actor_id: int | None, action: str, subject: str, details: dict[str, Any]
) -> None:
    session.add(AuditEntry(actor_id=actor_id, action=action, subject=subject, details=details))


# -- outbox ---------------------------------------------------------------------------------


async def queue_outbox(
    session: AsyncSession,
    *,
    transport: str,
    chat_id: str,
    user_id: int | None,
    kind: str,
    replies: Sequence[Message],
    broadcast_id: int | None = None,
    dedupe_key: str | None = None,
    subject_user_id: int | None = None,
) -> OutboxMessage:
    """Store messages for a chat, to be sent by the outbox worker (or shown on the
    terminal). `user_id` is the person it is addressed to, if any; `subject_user_id` the
    person whose data it carries (a report's copy for the coordinators carries the
    reporter's): erasing either person deletes the row."""
    message = OutboxMessage(
        transport=transport,
        chat_id=chat_id,
        user_id=user_id,
        subject_user_id=subject_user_id,
        kind=kind,
        payload=[reply.to_json() for reply in replies],
        status="queued",
        attempts=0,
        broadcast_id=broadcast_id,
        dedupe_key=dedupe_key,
    )
    session.add(message)
    await session.flush()
    return message


async def outbox_key_taken(session: AsyncSession, dedupe_key: str) -> bool:
    found = await session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key[:128]).limit(1)
    )
    return found is not None


async def pending_outbox(
    session: AsyncSession, transport: str, chat_id: str | None = None, limit: int = 100
) -> Sequence[OutboxMessage]:
    query = select(OutboxMessage).where(
        OutboxMessage.transport == transport,
        OutboxMessage.status == "queued",
        OutboxMessage.next_attempt_at <= utcnow(),
        # Expired alerts are never shown late.
        OutboxMessage.expires_at.is_(None) | (OutboxMessage.expires_at > utcnow()),
    )
    if chat_id is not None:
        query = query.where(OutboxMessage.chat_id == chat_id)
    return (await session.scalars(query.order_by(OutboxMessage.id).limit(limit))).all()


async def mark_outbox_sent(
    session: AsyncSession, message_id: int, platform_message_id: str = ""
) -> None:
    # Delivered: the text is no longer needed here (the recipient has it).
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status="sent", sent_at=utcnow(), platform_message_id=platform_message_id, payload=[]
        )
    )


# -- reports --------------------------------------------------------------------------------


def _count_report(insert_for: Any) -> Any:
    counters: Table = ReportCounter.__table__  # type: ignore[assignment]
    statement = insert_for(counters).values(year=bindparam("year"), last=1)
    return statement.on_conflict_do_update(
        index_elements=[counters.c.year], set_={"last": counters.c.last + 1}
    ).returning(counters.c.last)


# Built once: built on every call, the statement cost more than its round trip.
_COUNT_REPORT = {"sqlite": _count_report(sqlite_insert), "postgresql": _count_report(pg_insert)}


async def next_report_number(session: AsyncSession, year: int) -> int:
    """Hand out the next number for `year` atomically (safe under concurrent submissions)."""
    statement = _COUNT_REPORT[session.get_bind().dialect.name]
    number = (await session.execute(statement, {"year": year})).scalar_one()
    return int(number)


async def create_report(
    session: AsyncSession,
    *,
    prefix: str,
    user: User,
    category: str,
    answers: dict[str, Any],
    contact_allowed: bool,
    now: datetime,
) -> Report:
    number = await next_report_number(session, now.year)
    report = Report(
        reference=f"{prefix}-{now.year}-{number:06d}",
        user_id=user.id,
        transport=user.transport,
        category=category,
        region=user.region,
        status="new",
        answers=answers,
        contact_allowed=contact_allowed,
        status_note="",
        created_at=now,
        updated_at=now,
    )
    session.add(report)
    await session.flush()
    # Its reference is shown as soon as this commits: the commit must outlive a power cut.
    await make_durable(session)
    # The report holds its files: they stay while it does (or until media_days).
    for attachment in files_of(answers):
        await remember_media(session, attachment)
        session.add(MediaLink(sha256=attachment["sha256"], report_id=report.id, created_at=now))
    return report


async def reports_of(session: AsyncSession, user_id: int, limit: int = 10) -> Sequence[Report]:
    return (
        await session.scalars(
            select(Report).where(Report.user_id == user_id).order_by(Report.id.desc()).limit(limit)
        )
    ).all()


async def report_by_reference(session: AsyncSession, reference: str) -> Report | None:
    return await session.scalar(select(Report).where(Report.reference == reference))


_REPORTS_SINCE = (
    select(func.count())
    .select_from(Report)
    .where(Report.user_id == bindparam("user_id"), Report.created_at >= bindparam("since"))
)


async def reports_since(
    connection: AsyncConnection | AsyncSession, user_id: int, since: datetime
) -> int:
    """How many reports the user made since `since` (asked before each report: a
    statement built once, no ORM session needed)."""
    count = await connection.scalar(_REPORTS_SINCE, {"user_id": user_id, "since": since})
    return int(count or 0)


def files_of(answers: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored files a report's answers name: its media list and any voice answers."""
    found = [item for item in answers.get("media") or [] if isinstance(item, dict)]
    found += [
        value["voice"]
        for value in answers.values()
        if isinstance(value, dict) and isinstance(value.get("voice"), dict)
    ]
    return [item for item in found if "sha256" in item]


async def remember_media(session: AsyncSession, attachment: dict[str, Any]) -> None:
    """Describe a stored file (once: a file already described stays as it is)."""
    dialect = session.get_bind().dialect.name
    insert_for = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert_for(Media)
        .values(
            sha256=attachment["sha256"],
            kind=attachment["kind"],
            size=attachment["size"],
            file_name=attachment.get("file_name", ""),
            mime_type=attachment.get("mime_type", ""),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[Media.sha256])
    )
