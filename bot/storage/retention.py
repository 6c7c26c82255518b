"""How long stored files live: the purge queries of the media store.

The scheduler runs them (`bot.routine.purge_media`, `bot.routine.purge_exports`); each
takes the moment to count from, so tests move the clock. Files are deleted by the caller
after the commit: the returned `files` are those nothing holds any more (see
`bot.storage.privacy.release_files`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RetentionSettings
from bot.storage.models import (
    DialogueState,
    Media,
    MediaLink,
)
from bot.storage.privacy import hashes_in, release_files

# A file on disk that nothing names is deleted this long after it was written: younger
# ones may belong to an event still being handled (stored before its transaction ends).
ORPHAN_GRACE = timedelta(hours=24)


@dataclass
class Purged:
    """What a purge deleted (counts per kind) and the files to delete after the commit."""

    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


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
