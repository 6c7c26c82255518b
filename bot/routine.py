"""The runtime's own scheduled jobs: the purges of the retention settings (rows, stored
files, /mydata exports), the coordinators' daily digest and the weekly tip for those who
asked for one. They are registered with `router` like a feature's jobs (the runtime
composes it with the features' routers); the features register theirs (alerts, the draft
reminder) with their own routers.

Each gets the running bot and reads its work from the database, so a job that runs twice
(a coalesced misfire, a second instance) sends nothing twice: digests and tips carry a
dedupe key per day or week.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.core.events import Choice, Reply
from bot.core.jobs import Daily, Every
from bot.core.router import Router
from bot.storage import console, repos, retention
from bot.storage.db import transaction
from bot.storage.events import forget_handled
from bot.storage.models import Report, User, utcnow

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
router = Router("routine")
HANDLED_KEPT = timedelta(days=7)


@router.job("daily_purge", Daily(hour=3, minute=17))
async def purge(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Delete what the retention settings no longer allow: conversation logs, closed
    reports (and the files only they held), dialogues left untouched, people who never
    agreed or blocked the bot, outbox texts and records, expired alerts, the audit log."""
    settings = runtime.settings
    now = now or utcnow()
    # Staff named in the config are never purged as people who never agreed.
    keep = {
        (door.name, platform_id)
        for door in runtime.core.doors()
        for platform_id in (*door.admins, *door.coordinators)
    }
    async with transaction(runtime.sessions) as session:
        purged = await retention.purge_rows(session, settings.retention, now, keep)
        # Platforms repeat an update within hours (a webhook retried, a sync replayed): a
        # week of handled ids is plenty.
        purged.counts["handled_events"] = await forget_handled(session, now - HANDLED_KEPT)
        purged.counts["console_logins"] = await console.purge_console(session, now)
        await repos.audit(session, None, "purge", "", purged.counts)
    for sha256 in purged.files:
        runtime.core.media.delete(sha256)
    log.info("purge: %s", ", ".join(f"{k} {v}" for k, v in purged.counts.items() if v) or "none")
    return purged.counts


@router.job("daily_digest", Daily(hour=lambda settings: settings.scheduler.digest_hour))
async def daily_digest(runtime: Runtime, now: datetime | None = None) -> int:
    """New reports of the last 24 hours, to every coordinator destination; once a day."""
    now = now or utcnow()
    content, lang = runtime.content, runtime.settings.bot.default_language
    tz = ZoneInfo(runtime.settings.bot.timezone)
    async with runtime.sessions() as session:
        reports = (
            await session.scalars(
                select(Report)
                .where(Report.created_at >= now - timedelta(days=1))
                .order_by(Report.id)
            )
        ).all()
    lines = [
        content.text(
            lang,
            "report.line",
            reference=report.reference,
            date=content.format_when(lang, report.created_at, tz),
            category=content.label(lang, "categories", report.category),
            status=content.label(lang, "status", report.status),
        )
        for report in reports
    ]
    text = "\n".join(lines) or content.text(lang, "digest.none")
    title = content.text(lang, "digest.title", count=len(reports))
    day = now.astimezone(tz).date().isoformat()
    sent = 0
    async with runtime.sessions() as session:
        destinations = await runtime.core.coordinator_destinations(session)
    for destination in destinations:
        key = f"digest:{day}:{destination.transport}:{destination.chat_id}"
        sent += await _queue_once(runtime, destination.transport, destination.chat_id, None,
                                  Reply(text, title=title), key)  # fmt: skip
    return sent


@router.job("weekly_tips", Daily(hour=9, days="mon"))
async def weekly_tips(runtime: Runtime, now: datetime | None = None) -> int:
    """One tip card a week, for the role of each person who asked for it in /settings."""
    now = now or utcnow()
    year, week, _ = now.isocalendar()
    content = runtime.content
    async with runtime.sessions() as session:
        people = (
            await session.scalars(
                select(User).where(
                    User.transport.in_([d.name for d in runtime.core.doors() if d.active]),
                    User.weekly_tip.is_(True),
                    User.active.is_(True),
                    User.consent_at.is_not(None),
                    User.chat_id != "",
                )
            )
        ).all()
    sent = 0
    for person in people:
        topics = [
            tid
            for tid in content.topic_ids
            if (person.role or "other") in content.topic_meta[tid]["roles"]
        ] or content.topic_ids
        topic = content.topic(person.language, topics[week % len(topics)])
        reply = Reply(
            topic.cards[0],
            title=content.text(person.language, "digest.weekly_tip", title=topic.title),
            choices=[Choice(f"tip:{topic.id}:1", content.text(person.language, "tips.next"))]
            if len(topic.cards) > 1
            else [],
        )
        key = f"tip:{year}-{week}:u{person.id}"
        sent += await _queue_once(runtime, person.transport, person.chat_id, person.id, reply, key)
    return sent


@router.job("media_purge", Daily(hour=3, minute=27))
async def purge_media(runtime: Runtime, now: datetime | None = None) -> int:
    """Delete files held by a report for longer than `retention.media_days`, exports
    past their minutes, and files nothing holds — also those on disk that no row names,
    a day after they were written (a download whose event never completed, an old
    export). A file another report still holds stays. Returns the files deleted."""
    now = now or utcnow()
    store = runtime.core.media
    async with transaction(runtime.sessions) as session:
        purged = await retention.purge_files(session, runtime.settings.retention, now)
        known = await retention.known_files(session)
        orphans = retention.orphan_files(store.directory, known | set(purged.files), now)
        counts = {**purged.counts, "orphans": len(orphans)}
        if purged.files or orphans:
            await repos.audit(session, None, "purge_media", "", counts)
    for sha256 in purged.files:
        store.delete(sha256)
    for path in orphans:
        path.unlink(missing_ok=True)
    return len(purged.files) + len(orphans)


@router.job("export_purge", Every(seconds=300))
async def purge_exports(runtime: Runtime, now: datetime | None = None) -> int:
    """Delete /mydata exports whose `retention.export_minutes` are over."""
    async with transaction(runtime.sessions) as session:
        purged = await retention.purge_exports(session, now or utcnow())
    for sha256 in purged.files:
        runtime.core.media.delete(sha256)
    return len(purged.files)


async def _queue_once(
    runtime: Runtime, transport: str, chat_id: str, user_id: int | None, reply: Reply, key: str
) -> int:
    try:
        async with transaction(runtime.sessions) as session:
            await repos.queue_outbox(
                session,
                transport=transport,
                chat_id=chat_id,
                user_id=user_id,
                kind="notice",
                replies=[reply],
                dedupe_key=key,
            )
    except IntegrityError:
        return 0  # already queued by an earlier run
    return 1
