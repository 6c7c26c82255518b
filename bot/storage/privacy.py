"""Export and erasure of one person's data (GDPR Art. 15 and 17), and which stored files
are still held by someone.

Files are stored once per SHA-256 and shared: two reports with the same forwarded photo
hold one file. A file is deleted when nothing holds it any more — no report or export
(`media_links`) and no dialogue in progress — never because one of its holders went.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import (
    AlertTemplate,
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

_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


async def export_user(session: AsyncSession, user: User) -> dict[str, Any]:
    """Everything stored about `user`, as plain JSON-ready data."""
    reports = (await session.scalars(select(Report).where(Report.user_id == user.id))).all()
    log = (
        await session.scalars(
            select(ConversationEntry)
            .where(ConversationEntry.user_id == user.id)
            .order_by(ConversationEntry.id)
        )
    ).all()
    outbox = (
        await session.scalars(select(OutboxMessage).where(OutboxMessage.user_id == user.id))
    ).all()
    return {
        "profile": {
            "transport": user.transport,
            "platform_id": user.platform_id,
            "language": user.language,
            "role": user.role,
            "region": user.region,
            "consent_at": user.consent_at,
            "created_at": user.created_at,
            "active": user.active,
        },
        "reports": [
            {
                "reference": r.reference,
                "category": r.category,
                "region": r.region,
                "status": r.status,
                "created_at": r.created_at,
                "answers": r.answers,
            }
            for r in reports
        ],
        "conversation": [
            {"at": e.at, "direction": e.direction, "kind": e.kind, "text": e.text} for e in log
        ],
        "deliveries": [
            {"kind": m.kind, "status": m.status, "created_at": m.created_at} for m in outbox
        ],
    }


async def keep_export(session: AsyncSession, user_id: int, sha256: str, until: datetime) -> None:
    """The person's export file is held until `until` (the export purge deletes it then),
    or until they are erased, whichever comes first."""
    session.add(MediaLink(sha256=sha256, user_id=user_id, expires_at=until))


def hashes_in(data: Any) -> set[str]:
    """Stored files named anywhere in `data` (a dialogue's answers so far)."""
    return set(_SHA256.findall(json.dumps(data, default=str)))


async def release_files(session: AsyncSession, candidates: Iterable[str]) -> list[str]:
    """Of `candidates`, the files nothing holds any more: their descriptions are deleted
    here, and the caller deletes the files once the transaction has committed."""
    gone = []
    for sha256 in sorted(set(candidates)):
        linked = select(MediaLink.id).where(MediaLink.sha256 == sha256).limit(1)
        if await session.scalar(linked) is not None:
            continue
        # A dialogue in progress (a report not sent yet) holds its files too.
        drafted = (
            select(DialogueState.id)
            .where(cast(DialogueState.data, Text).contains(sha256, autoescape=True))
            .limit(1)
        )
        if await session.scalar(drafted) is not None:
            continue
        gone.append(sha256)
    if gone:
        await session.execute(delete(Media).where(Media.sha256.in_(gone)))
    return gone


# Report answers that say how to reach the reporter, not what they observed.
CONTACT_KEYS = ("phone", "_contact")


async def erase_user(session: AsyncSession, user: User, mode: str) -> dict[str, Any]:
    """Erase `user`; their reports are deleted ("erase") or kept without them ("anonymise").

    Reaches every row that carries their data, whoever it was addressed to: their profile,
    dialogue state, conversation log, subscriptions, acknowledgements, every outbox row to
    them or about them (a report's copy for the coordinators), their exports; the audit
    log and alerts keep their entries without the person's id. Returns counts, and under
    "media" the files nothing holds any more, which the caller deletes after the commit."""
    reports = (await session.scalars(select(Report).where(Report.user_id == user.id))).all()
    held = select(MediaLink.sha256).where(MediaLink.user_id == user.id)
    candidates = set((await session.scalars(held)).all())
    drafts = await session.scalars(
        select(DialogueState.data).where(DialogueState.user_id == user.id)
    )
    for data in drafts.all():
        candidates |= hashes_in(data)
    report_ids = [report.id for report in reports]
    if mode == "erase":
        if report_ids:
            linked = select(MediaLink.sha256).where(MediaLink.report_id.in_(report_ids))
            candidates |= set((await session.scalars(linked)).all())
            # Their links go with them (ON DELETE CASCADE); files others hold stay.
            await session.execute(delete(Report).where(Report.id.in_(report_ids)))
    else:
        # What was observed stays; how to reach the reporter (their handle, the phone number
        # they gave for questions) goes with them.
        for report in reports:
            report.answers = {
                key: value for key, value in report.answers.items() if key not in CONTACT_KEYS
            }
            report.user_id = None
            report.contact_allowed = False
    await session.execute(
        delete(OutboxMessage).where(
            or_(OutboxMessage.user_id == user.id, OutboxMessage.subject_user_id == user.id)
        )
    )
    for table in (ConversationEntry, DialogueState, MediaLink):
        await session.execute(delete(table).where(table.user_id == user.id))
    # What they did to shared state stays on record, without who did it.
    await session.execute(
        update(AuditEntry).where(AuditEntry.actor_id == user.id).values(actor_id=None)
    )
    await session.execute(
        update(Broadcast).where(Broadcast.created_by == user.id).values(created_by=None)
    )
    await session.execute(
        update(AlertTemplate).where(AlertTemplate.updated_by == user.id).values(updated_by=None)
    )
    await session.delete(user)
    await session.flush()
    return {"reports": len(reports), "media": await release_files(session, candidates)}
