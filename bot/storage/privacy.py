"""Export and erasure of one person's data (GDPR Art. 15 and 17)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import (
    ConversationEntry,
    DialogueState,
    Media,
    OutboxMessage,
    Report,
    User,
)


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


def _media_of(report: Report) -> list[str]:
    found = [item["sha256"] for item in report.answers.get("media") or []]
    found += [
        value["voice"]["sha256"]
        for value in report.answers.values()
        if isinstance(value, dict) and "voice" in value
    ]
    return found


async def erase_user(session: AsyncSession, user: User, mode: str) -> dict[str, Any]:
    """Erase `user`; their reports are deleted ("erase") or kept without them ("anonymise").
    Returns counts, and under "media" the files the caller must delete."""
    reports = (await session.scalars(select(Report).where(Report.user_id == user.id))).all()
    media: list[str] = []
    if mode == "erase":
        for report in reports:
            media += _media_of(report)
            await session.delete(report)
        if media:
            await session.execute(delete(Media).where(Media.sha256.in_(media)))
    else:
        await session.execute(
            update(Report)
            .where(Report.user_id == user.id)
            .values(user_id=None, contact_allowed=False)
        )
    for table in (ConversationEntry, DialogueState, OutboxMessage):
        await session.execute(delete(table).where(table.user_id == user.id))
    await session.delete(user)
    await session.flush()
    return {"reports": len(reports), "media": media}
