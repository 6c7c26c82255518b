"""What the coordinator console reads (inbox, map, a report's page and history, files), and
its one-time login links and sessions. Typed rows out; the console's templates only lay
them out. What a coordinator *does* in the console goes through the Core, not here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import (
    AuditEntry,
    ConsoleLogin,
    ConsoleSession,
    DialogueState,
    Media,
    MediaLink,
    OutboxMessage,
    Report,
    ReportRead,
    User,
)

INBOX_LIMIT = 200
# A login link is valid this long (`/console` in the chat, `sicherheitsbot console-link`).
LOGIN_MINUTES = 10
# Audit actions that make up a report's history on its page.
HISTORY_ACTIONS = ("report_submitted", "report_status", "report_reply", "report_details")


@dataclass(frozen=True, slots=True)
class Filters:
    """The inbox's and the map's filters; empty values filter nothing."""

    status: str = ""
    category: str = ""
    region: str = ""
    since: datetime | None = None
    until: datetime | None = None
    photo: bool = False


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One report as the inbox and the map list it."""

    id: int
    reference: str
    status: str
    category: str
    created_at: datetime
    region: str
    has_photo: bool
    unread: bool
    latitude: float | None
    longitude: float | None
    place: str
    description: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A step in a report's life: who (transport:id, "" for the bot) did what, when."""

    at: datetime
    action: str
    actor: str
    details: dict[str, Any]


def _has_photo() -> Any:
    return exists(
        select(MediaLink.id)
        .join(Media, Media.sha256 == MediaLink.sha256)
        .where(MediaLink.report_id == Report.id, Media.kind == "photo")
    )


def _where(filters: Filters) -> list[Any]:
    found: list[Any] = []
    if filters.status:
        found.append(Report.status == filters.status)
    if filters.category:
        found.append(Report.category == filters.category)
    if filters.region:
        found.append(Report.region == filters.region)
    if filters.since is not None:
        found.append(Report.created_at >= filters.since)
    if filters.until is not None:
        found.append(Report.created_at < filters.until)
    if filters.photo:
        found.append(_has_photo())
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def reports(
    session: AsyncSession,
    reader_id: int,
    filters: Filters,
    *,
    located: bool = False,
    limit: int = INBOX_LIMIT,
) -> list[ReportRow]:
    """Reports matching `filters`, newest first, marked unread for `reader_id` until they
    opened them; `located`: only those with a shared location (the map)."""
    read = exists(
        select(ReportRead.report_id).where(
            ReportRead.report_id == Report.id, ReportRead.user_id == reader_id
        )
    )
    rows = await session.execute(
        select(Report, _has_photo().label("photo"), read.label("read"))
        .where(*_where(filters))
        .order_by(Report.id.desc())
        .limit(limit)
    )
    found = []
    for report, photo, was_read in rows.all():
        place = report.answers.get("place") or {}
        latitude = longitude = None
        if isinstance(place, dict) and "lat" in place and "lon" in place:
            latitude, longitude = float(place["lat"]), float(place["lon"])
        elif located:
            continue
        found.append(
            ReportRow(
                id=report.id,
                reference=report.reference,
                status=report.status,
                category=report.category,
                created_at=report.created_at,
                region=report.region or "",
                has_photo=bool(photo),
                unread=not was_read,
                latitude=latitude,
                longitude=longitude,
                place=_text(place.get("text")) if isinstance(place, dict) else "",
                description=_text(report.answers.get("description"))[:160],
            )
        )
    return found


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    """How many reports have each status."""
    rows = await session.execute(select(Report.status, func.count()).group_by(Report.status))
    return {str(status): int(count) for status, count in rows.all()}


async def report(session: AsyncSession, reference: str) -> Report | None:
    return await session.scalar(select(Report).where(Report.reference == reference))


async def reporter(session: AsyncSession, found: Report) -> User | None:
    return None if found.user_id is None else await session.get(User, found.user_id)


async def history(session: AsyncSession, reference: str) -> list[HistoryEntry]:
    """The report's audit entries, oldest first, with who did them."""
    rows = await session.execute(
        select(AuditEntry, User.transport, User.platform_id)
        .outerjoin(User, User.id == AuditEntry.actor_id)
        .where(AuditEntry.subject == reference, AuditEntry.action.in_(HISTORY_ACTIONS))
        .order_by(AuditEntry.id)
    )
    return [
        HistoryEntry(entry.at, entry.action, f"{t}:{p}" if t else "", dict(entry.details))
        for entry, t, p in rows.all()
    ]


async def mark_read(session: AsyncSession, user_id: int, report_id: int) -> None:
    """The coordinator opened the report (a mark of their own, nothing shared)."""
    known = await session.get(ReportRead, (user_id, report_id))
    if known is None:
        session.add(ReportRead(user_id=user_id, report_id=report_id))


async def files(session: AsyncSession, report_id: int) -> Sequence[Media]:
    """The files a report holds."""
    return (
        await session.scalars(
            select(Media)
            .join(MediaLink, MediaLink.sha256 == Media.sha256)
            .where(MediaLink.report_id == report_id)
            .order_by(MediaLink.id)
        )
    ).all()


async def report_file(session: AsyncSession, sha256: str) -> Media | None:
    """A stored file that some report holds (never an export or a draft's file)."""
    return await session.scalar(
        select(Media).where(
            Media.sha256 == sha256,
            exists(
                select(MediaLink.id).where(
                    MediaLink.sha256 == Media.sha256, MediaLink.report_id.is_not(None)
                )
            ),
        )
    )


async def open_flow(session: AsyncSession, user_id: int, chat_id: str) -> str:
    """The dialogue a person has open in a chat ("" for none): whether a form sent whole
    reached its preview."""
    found = await session.scalar(
        select(DialogueState.flow).where(
            DialogueState.user_id == user_id, DialogueState.chat_id == chat_id
        )
    )
    return found or ""


async def outbox_by_status(session: AsyncSession) -> dict[str, int]:
    """Outbox rows per status (for /metrics)."""
    rows = await session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    )
    return {str(status): int(count) for status, count in rows.all()}


# -- one-time login links and sessions ------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_login(
    session: AsyncSession, user_id: int, now: datetime, minutes: float = LOGIN_MINUTES
) -> str:
    """A new one-time login token for the person; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleLogin(
            token_hash=_hash(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
    )
    await session.flush()
    return token


async def use_login(session: AsyncSession, token: str, now: datetime) -> int | None:
    """The person a login token belongs to, marking it used; None for a token unknown,
    used before or expired. One statement, so two uses at once cannot both succeed."""
    result = await session.execute(
        update(ConsoleLogin)
        .where(
            ConsoleLogin.token_hash == _hash(token),
            ConsoleLogin.used_at.is_(None),
            ConsoleLogin.expires_at > now,
        )
        .values(used_at=now)
        .returning(ConsoleLogin.user_id)
    )
    found = result.scalar_one_or_none()
    return None if found is None else int(found)


async def open_session(
    session: AsyncSession, user_id: int, now: datetime, hours: float
) -> tuple[str, str]:
    """A new console session: (the cookie's secret, the CSRF token)."""
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id_hash=_hash(secret),
            user_id=user_id,
            csrf=csrf,
            language="",
            flash=[],
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    await session.flush()
    return secret, csrf


async def session_for(
    session: AsyncSession, secret: str, now: datetime
) -> tuple[ConsoleSession, User] | None:
    """The live session a cookie names, with its person; None when unknown or expired."""
    row = (
        await session.execute(
            select(ConsoleSession, User)
            .join(User, User.id == ConsoleSession.user_id)
            .where(ConsoleSession.id_hash == _hash(secret), ConsoleSession.expires_at > now)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def end_session(session: AsyncSession, secret: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _hash(secret)))


async def purge_console(session: AsyncSession, now: datetime) -> int:
    """Expired login links and sessions (the daily purge)."""
    links = await session.execute(delete(ConsoleLogin).where(ConsoleLogin.expires_at <= now))
    sessions = await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    return int(getattr(links, "rowcount", 0) or 0) + int(getattr(sessions, "rowcount", 0) or 0)
