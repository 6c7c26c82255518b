"""Many people at once, written straight through the ORM: for the scale test and benchmarks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.db import transaction
from bot.storage.models import Broadcast, DialogueState, User, utcnow

LANGUAGES = ("de", "en", "pl")
CHUNK = 5_000


async def add_telegram_users(
    sessions: async_sessionmaker[AsyncSession], count: int, first_chat_id: int = 1_000_000
) -> list[int]:
    """`count` consented Telegram users (truck drivers in Köln); returns their chat ids."""
    chat_ids = list(range(first_chat_id, first_chat_id + count))
    now = utcnow()
    for start in range(0, count, CHUNK):
        rows = [
            {
                "transport": "telegram",
                "platform_id": str(chat_id),
                "chat_id": str(chat_id),
                "language": LANGUAGES[chat_id % len(LANGUAGES)],
                "role": "truck_driver",
                "region": "koeln",
                "consent_at": now,
                "active": True,
                "coordinator": False,
                "weekly_tip": False,
                "created_at": now,
                "last_seen_at": now,
            }
            for chat_id in chat_ids[start : start + CHUNK]
        ]
        async with transaction(sessions) as session:
            await session.execute(insert(User), rows)
    return chat_ids


async def add_dialogues(
    sessions: async_sessionmaker[AsyncSession], count: int, template: DialogueState
) -> int:
    """Open dialogues for the first `count` people: copies of `template` (a real state
    half way through a dialogue), each in the person's own chat."""
    async with sessions() as session:
        users = (
            await session.execute(
                select(User.id, User.chat_id)
                .where(User.id != template.user_id)
                .order_by(User.id)
                .limit(count)
            )
        ).all()
    now = utcnow()
    for start in range(0, len(users), CHUNK):
        rows = [
            {
                "user_id": user_id,
                "chat_id": chat_id,
                "flow": template.flow,
                "data": template.data,
                "choices": template.choices,
                "updated_at": now,
            }
            for user_id, chat_id in users[start : start + CHUNK]
        ]
        async with transaction(sessions) as session:
            await session.execute(insert(DialogueState), rows)
    return len(users)


async def add_alert(sessions: async_sessionmaker[AsyncSession], text: str = "Achtung") -> int:
    """A 'general' warning to everyone, valid for four hours; returns its id."""
    async with transaction(sessions) as session:
        broadcast = Broadcast(
            topic="general",
            severity="warning",
            texts={"de": text, "en": text, "pl": text},
            language="de",
            roles=[],
            regions=[],
            transports=["telegram"],
            status="scheduled",
            send_at=utcnow(),
            expires_at=utcnow() + timedelta(hours=4),
            cursor=0,
        )
        session.add(broadcast)
        await session.flush()
        return broadcast.id
