"""An alert as people read it, and queueing it with that rendering.

The queries (recipients, queueing, receipts, due alerts) are in `bot.storage.alerts`; this
module says what the alert looks like in each language and hands that to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.events import Choice, Reply
from bot.core.i18n import Content
from bot.storage import alerts
from bot.storage.models import Broadcast

# An alert without a text in a person's language reaches them in these (those given).
FALLBACK_LANGUAGES = ("en", "de")


def alert_replies(content: Content, tz: Any, broadcast: Broadcast, lang: str) -> list[Reply]:
    """The alert as a person reads it: in their language; else its English and German texts
    (or the first one given) under one line in their own language that says what it is."""
    text = broadcast.texts.get(lang) or _fallback(content, broadcast, lang)
    title = content.text(
        lang,
        "alerts.message_title",
        severity=content.label(lang, "alert_severity", broadcast.severity),
        topic=content.label(lang, "alert_topics", broadcast.topic),
    )
    until = content.text(
        lang, "alerts.valid_until", when=content.format_when(lang, broadcast.expires_at, tz)
    )
    return [
        Reply(
            text=f"{text}\n\n{until}",
            title=title,
            choices=[Choice(f"ack:{broadcast.id}", content.text(lang, "alerts.understood"))],
        )
    ]


def _fallback(content: Content, broadcast: Broadcast, lang: str) -> str:
    """The texts for a person whose language the alert lacks, each under its language's name."""
    given = [code for code in FALLBACK_LANGUAGES if broadcast.texts.get(code)]
    parts = [content.text(lang, "alerts.fallback_note")]
    for code in given or [broadcast.language]:
        parts.append(f"{content.label(lang, 'languages', code)}\n{broadcast.texts[code]}")
    return "\n\n".join(parts)


def renderer(content: Content, tz: Any) -> alerts.Render:
    """The outbox payload of an alert in one language (for `bot.storage.alerts`)."""

    def render(broadcast: Broadcast, lang: str) -> list[dict[str, Any]]:
        return [reply.to_json() for reply in alert_replies(content, tz, broadcast, lang)]

    return render


async def fan_out(
    sessions: async_sessionmaker[AsyncSession],
    content: Content,
    tz: Any,
    broadcast_id: int,
    batch: int = alerts.BATCH,
    max_batches: int | None = None,
    restart: bool = False,
) -> int:
    """Queue the alert for every recipient (see `bot.storage.alerts.fan_out`)."""
    return await alerts.fan_out(
        sessions, renderer(content, tz), broadcast_id, batch, max_batches, restart
    )


async def fan_out_page(
    session: AsyncSession, content: Content, tz: Any, broadcast: Broadcast
) -> int | None:
    """Queue the next page of recipients; None when all are queued."""
    return await alerts.fan_out_page(session, renderer(content, tz), broadcast)


async def resend_urgent(
    sessions: async_sessionmaker[AsyncSession],
    content: Content,
    tz: Any,
    after_minutes: int,
    now: datetime | None = None,
) -> int:
    """Urgent alerts once more to those who have not pressed 'Understood'."""
    return await alerts.resend_urgent(sessions, renderer(content, tz), after_minutes, now)
