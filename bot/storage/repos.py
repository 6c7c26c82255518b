"""Repository functions: the only place that builds queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.events import Reply
from bot.storage.models import (
    AuditEntry,
    ConversationEntry,
    DialogueState,
    Media,
    OutboxMessage,
    Report,
    ReportCounter,
    User,
    utcnow,
)

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


async def get_state(session: AsyncSession, user: User, chat_id: str) -> DialogueState:
    state = await session.scalar(
        select(DialogueState).where(
            DialogueState.user_id == user.id, DialogueState.chat_id == chat_id
        )
    )
    if state is None:
        state = DialogueState(user_id=user.id, chat_id=chat_id, flow="", data={}, choices=[])
        session.add(state)
        await session.flush()
    return state


async def user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


# -- logs -----------------------------------------------------------------------------------


async def log_message(
    session: AsyncSession,
    *,
    transport: str,
    chat_id: str,
    user_id: int | None,
    direction: str,
    kind: str,
    text: str | None,
) -> None:
    session.add(
        ConversationEntry(
            transport=transport,
            chat_id=chat_id,
            user_id=user_id,
            direction=direction,
            kind=kind,
            text=text,
        )
    )


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
    replies: Sequence[Reply],
    broadcast_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    message = OutboxMessage(
        transport=transport,
        chat_id=chat_id,
        user_id=user_id,
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
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="sent", sent_at=utcnow(), platform_message_id=platform_message_id)
    )


# -- reports --------------------------------------------------------------------------------


async def next_report_number(session: AsyncSession, year: int) -> int:
    """Hand out the next number for `year` atomically (safe under concurrent submissions)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(ReportCounter)
        .values(year=year, last=1)
        .on_conflict_do_update(
            index_elements=[ReportCounter.year], set_={"last": ReportCounter.last + 1}
        )
        .returning(ReportCounter.last)
    )
    number = (await session.execute(statement)).scalar_one()
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
        status="new",
        answers=answers,
        contact_allowed=contact_allowed,
        status_note="",
        created_at=now,
        updated_at=now,
    )
    session.add(report)
    await session.flush()
    return report


async def reports_of(session: AsyncSession, user_id: int, limit: int = 10) -> Sequence[Report]:
    return (
        await session.scalars(
            select(Report).where(Report.user_id == user_id).order_by(Report.id.desc()).limit(limit)
        )
    ).all()


async def report_by_reference(session: AsyncSession, reference: str) -> Report | None:
    return await session.scalar(select(Report).where(Report.reference == reference))


async def reports_since(session: AsyncSession, user_id: int, since: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Report)
        .where(Report.user_id == user_id, Report.created_at >= since)
    )
    return int(count or 0)


async def remember_media(session: AsyncSession, attachment: dict[str, Any]) -> None:
    if await session.get(Media, attachment["sha256"]) is None:
        session.add(
            Media(
                sha256=attachment["sha256"],
                kind=attachment["kind"],
                size=attachment["size"],
                file_name=attachment.get("file_name", ""),
                mime_type=attachment.get("mime_type", ""),
            )
        )
