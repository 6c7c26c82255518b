"""How long each kind of stored personal data lives: the purge queries.

The scheduler runs them (`bot.routine.purge`, `bot.routine.purge_media`,
`bot.routine.purge_exports`); each takes the moment to count from, so tests move the
clock. Files are deleted by the caller after the commit: the returned `files` are those
nothing holds any more (see `bot.storage.privacy.release_files`). The README's table
"What is stored, for how long" is the specification; tests/test_retention.py proves it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Text, cast, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RetentionSettings
from bot.storage.models import (
    AuditEntry,
    Broadcast,
    ConversationEntry,
    DialogueState,
    Media,
    MediaLink,
    OutboxMessage,
    Report,
    User,
)
from bot.storage.privacy import erase_user, hashes_in, release_files

# A file on disk that nothing names is deleted this long after it was written: younger
# ones may belong to an event still being handled (stored before its transaction ends).
ORPHAN_GRACE = timedelta(hours=24)
WAITING = ("queued", "sending")


@dataclass
class Purged:
    """What a purge deleted (counts per kind) and the files to delete after the commit."""

    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_rows(
    session: AsyncSession,
    retention: RetentionSettings,
    now: datetime,
    keep_users: Iterable[tuple[str, str]] = (),
) -> Purged:
    """Everything but the media store's own rules (`purge_files`): conversation logs,
    closed reports, dialogues left untouched, people who never agreed or blocked the bot,
    outbox texts and delivery records, expired alerts, the audit log."""

    def days(count: int) -> datetime:
        return now - timedelta(days=count)

    purged = Purged()
    candidates: set[str] = set()
    counts = purged.counts

    logs = delete(ConversationEntry).where(ConversationEntry.at < days(retention.conversation_days))
    counts["conversation"] = _count(await session.execute(logs))

    closed = select(Report.id).where(
        Report.status == "closed", Report.closed_at < days(retention.closed_report_days)
    )
    old_reports = list((await session.scalars(closed)).all())
    if old_reports:
        linked = select(MediaLink.sha256).where(MediaLink.report_id.in_(old_reports))
        candidates |= set((await session.scalars(linked)).all())
        await session.execute(delete(Report).where(Report.id.in_(old_reports)))
    counts["reports"] = len(old_reports)

    # A dialogue left alone this long (a report begun and never sent) is discarded whole.
    stale = DialogueState.updated_at < days(retention.draft_days)
    for data in (await session.scalars(select(DialogueState.data).where(stale))).all():
        candidates |= hashes_in(data)
    counts["dialogues"] = _count(await session.execute(delete(DialogueState).where(stale)))

    counts["users_without_consent"] = await _purge_unconsented(
        session, days(retention.unconsented_days), set(keep_users)
    )
    gone_quiet = await session.scalars(
        select(User).where(
            User.active.is_(False), User.last_seen_at < days(retention.inactive_user_days)
        )
    )
    blocked = list(gone_quiet.all())
    for user in blocked:
        erased = await erase_user(session, user, retention.on_erasure)
        candidates |= set(erased["media"])
    counts["users_blocked"] = len(blocked)

    counts.update(await _purge_outbox(session, retention, now))
    old_alerts = delete(Broadcast).where(Broadcast.expires_at < days(retention.delivery_days))
    counts["alerts"] = _count(await session.execute(old_alerts))
    audit = delete(AuditEntry).where(AuditEntry.at < days(retention.audit_days))
    counts["audit"] = _count(await session.execute(audit))
    purged.files = await release_files(session, candidates)
    return purged


async def _purge_unconsented(
    session: AsyncSession, before: datetime, keep: set[tuple[str, str]]
) -> int:
    """People who never agreed to the privacy notice, not seen since `before`: only their
    id and language were kept, and nothing of it is needed any more. Coordinators (staff:
    they never onboard) stay."""
    found = (
        await session.execute(
            select(User.id, User.transport, User.platform_id).where(
                User.consent_at.is_(None),
                User.coordinator.is_(False),
                User.last_seen_at < before,
            )
        )
    ).all()
    ids = [row.id for row in found if (row.transport, row.platform_id) not in keep]
    if ids:
        # Their dialogue state, log and outbox rows go with them (ON DELETE CASCADE).
        await session.execute(delete(User).where(User.id.in_(ids)))
    return len(ids)


async def _purge_outbox(
    session: AsyncSession, retention: RetentionSettings, now: datetime
) -> dict[str, int]:
    """A message not delivered within `undelivered_days` (or an alert past its expiry)
    expires and loses its text; a row that is done keeps no text; delivery records go
    after `delivery_days`."""
    expire = (
        update(OutboxMessage)
        .where(
            OutboxMessage.status.in_(WAITING),
            (OutboxMessage.created_at < now - timedelta(days=retention.undelivered_days))
            | (OutboxMessage.expires_at <= now),
        )
        .values(status="expired", payload=[], last_error="expired unsent")
    )
    expired = _count(await session.execute(expire))
    # Done rows lose their text when they are done; this catches any path that did not.
    strip = (
        update(OutboxMessage)
        .where(OutboxMessage.status.not_in(WAITING), cast(OutboxMessage.payload, Text) != "[]")
        .values(payload=[])
    )
    stripped = _count(await session.execute(strip))
    records = delete(OutboxMessage).where(
        OutboxMessage.status.not_in(WAITING),
        OutboxMessage.created_at < now - timedelta(days=retention.delivery_days),
    )
    deleted = _count(await session.execute(records))
    return {"outbox_expired": expired, "outbox_stripped": stripped, "outbox_deleted": deleted}


async def purge_files(session: AsyncSession, retention: RetentionSettings, now: datetime) -> Purged:
    """Files held past `media_days` by a report, exports past their minutes, and file
    descriptions nothing holds: their links and descriptions go; `files` to delete."""
    candidates: set[str] = set()
    old = (MediaLink.report_id.is_not(None)) & (
        MediaLink.created_at < now - timedelta(days=retention.media_days)
    )
    candidates |= set((await session.scalars(select(MediaLink.sha256).where(old))).all())
    await session.execute(delete(MediaLink).where(old))
    purged = await purge_exports(session, now)
    candidates |= set(purged.files)
    unheld = select(Media.sha256).where(
        ~select(MediaLink.id).where(MediaLink.sha256 == Media.sha256).exists()
    )
    candidates |= set((await session.scalars(unheld)).all())
    files = await release_files(session, candidates)
    return Purged({"files": len(files)}, files)


async def purge_exports(session: AsyncSession, now: datetime) -> Purged:
    """Exports (/mydata) whose minutes are over."""
    due = MediaLink.expires_at <= now
    found = set((await session.scalars(select(MediaLink.sha256).where(due))).all())
    await session.execute(delete(MediaLink).where(due))
    files = await release_files(session, found) if found else []
    return Purged({"exports": len(files)}, files)


async def known_files(session: AsyncSession) -> set[str]:
    """Every file the database names: described, held, or in a dialogue in progress."""
    known = set((await session.scalars(select(Media.sha256))).all())
    known |= set((await session.scalars(select(MediaLink.sha256))).all())
    drafts = select(DialogueState.data).where(DialogueState.flow != "")
    for data in (await session.scalars(drafts)).all():
        known |= hashes_in(data)
    return known


def orphan_files(directory: Path, known: set[str], now: datetime) -> list[Path]:
    """Files in the media store that no row names, written more than ORPHAN_GRACE before
    `now` (half-written `.part` files included)."""
    if not directory.is_dir():
        return []
    cutoff = (now - ORPHAN_GRACE).timestamp()
    found = []
    for path in directory.glob("*/*"):
        name = path.name.removesuffix(".part")
        if path.is_file() and name not in known and os.stat(path).st_mtime < cutoff:
            found.append(path)
    return found
