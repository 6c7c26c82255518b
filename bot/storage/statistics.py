"""The partnership's figures (the console's statistics page and the annual summary): reports
by week, month, category, region and status, the share passed to the police, the median
time to the first triage; alerts sent, people reached, "understood"; people by role,
region, language and transport. Counts only: no row here names a person.

Reports and alerts are counted within a period (by when a report came in, when an alert
was to go out); people as they are now (consented and active).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Acknowledgement, AuditEntry, Broadcast, OutboxMessage, Report, User

# A reporter who erased themselves, a person who gave no role: counted under this key.
UNKNOWN = "unknown"
POLICE = "police"


@dataclass(frozen=True, slots=True)
class Period:
    """From `since` (inclusive) to `until` (exclusive); None: open."""

    since: datetime | None = None
    until: datetime | None = None

    def where(self, column: Any) -> list[Any]:
        found = []
        if self.since is not None:
            found.append(column >= self.since)
        if self.until is not None:
            found.append(column < self.until)
        return found


Counts = list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class Picture:
    """Every figure of the statistics page for one period."""

    reports: int
    per_week: Counts
    per_month: Counts
    by_category: Counts
    by_region: Counts
    by_status: Counts
    passed_to_police: int
    triaged: int
    median_triage: timedelta | None
    alerts_sent: int
    deliveries: int
    people_reached: int
    understood: int
    people: int
    people_by_role: Counts
    people_by_region: Counts
    people_by_language: Counts
    people_by_transport: Counts

    @property
    def police_share(self) -> float:
        return self.passed_to_police / self.reports if self.reports else 0.0

    @property
    def understood_rate(self) -> float:
        """ "Understood" pressed per alert delivered (one per alert and person)."""
        return self.understood / self.deliveries if self.deliveries else 0.0


def _sorted(counter: Counter[str]) -> Counts:
    """Largest first; ties by key, so a table reads the same every time."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _in_order(counter: Counter[str]) -> Counts:
    return sorted(counter.items())


def _median(waits: list[timedelta]) -> timedelta | None:
    """The middle of sorted waits (the mean of the two middle ones for an even count)."""
    if not waits:
        return None
    middle = len(waits) // 2
    return waits[middle] if len(waits) % 2 else (waits[middle - 1] + waits[middle]) / 2


def week_of(moment: datetime, tz: tzinfo) -> str:
    """The ISO week a moment falls in, in the deployment's zone: "2026-W49"."""
    year, week, _day = moment.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


def month_of(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m")


async def _reports(session: AsyncSession, period: Period, tz: tzinfo) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(
                Report.reference, Report.created_at, Report.category, Report.status, Report.region
            ).where(*period.where(Report.created_at))
        )
    ).all()
    created = {reference: at for reference, at, *_rest in rows}
    # The first status change of each report, and whether it was ever passed to the police.
    first: dict[str, datetime] = {}
    police: set[str] = {ref for ref, _at, _cat, status, _reg in rows if status == POLICE}
    changes = await session.execute(
        select(AuditEntry.subject, AuditEntry.at, AuditEntry.details)
        .where(AuditEntry.action == "report_status", AuditEntry.subject.in_(list(created)))
        .order_by(AuditEntry.id)
    )
    for reference, at, details in changes.all():
        first.setdefault(reference, at)
        if isinstance(details, dict) and details.get("status") == POLICE:
            police.add(reference)
    waits = sorted(first[ref] - created[ref] for ref in first)
    return {
        "reports": len(rows),
        "per_week": _in_order(Counter(week_of(at, tz) for _ref, at, *_rest in rows)),
        "per_month": _in_order(Counter(month_of(at, tz) for _ref, at, *_rest in rows)),
        "by_category": _sorted(Counter(str(row[2]) for row in rows)),
        "by_region": _sorted(Counter(str(row[4] or UNKNOWN) for row in rows)),
        "by_status": _sorted(Counter(str(row[3]) for row in rows)),
        "passed_to_police": len(police),
        "triaged": len(waits),
        "median_triage": _median(waits),
    }


async def _alerts(session: AsyncSession, period: Period) -> dict[str, Any]:
    chosen = select(Broadcast.id).where(*period.where(Broadcast.send_at))
    sent = await session.scalar(
        select(func.count(func.distinct(OutboxMessage.broadcast_id))).where(
            OutboxMessage.broadcast_id.in_(chosen)
        )
    )
    delivered = OutboxMessage.broadcast_id.in_(chosen), OutboxMessage.status == "sent"
    # An urgent alert's second sending reaches no one new: one delivery per alert and person.
    pairs = select(OutboxMessage.broadcast_id, OutboxMessage.user_id).where(*delivered).distinct()
    deliveries = await session.scalar(select(func.count()).select_from(pairs.subquery()))
    reached = await session.scalar(
        select(func.count(func.distinct(OutboxMessage.user_id))).where(*delivered)
    )
    understood = await session.scalar(
        select(func.count()).where(Acknowledgement.broadcast_id.in_(chosen))
    )
    return {
        "alerts_sent": int(sent or 0),
        "deliveries": int(deliveries or 0),
        "people_reached": int(reached or 0),
        "understood": int(understood or 0),
    }


async def _people(session: AsyncSession) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(User.role, User.region, User.language, User.transport).where(
                User.consent_at.is_not(None), User.active.is_(True)
            )
        )
    ).all()

    def by(index: int) -> Counts:
        return _sorted(Counter(str(row[index] or UNKNOWN) for row in rows))

    return {
        "people": len(rows),
        "people_by_role": by(0),
        "people_by_region": by(1),
        "people_by_language": by(2),
        "people_by_transport": by(3),
    }


async def picture(session: AsyncSession, period: Period, tz: tzinfo) -> Picture:
    """Every figure for `period` (reports and alerts) and of the people now."""
    return Picture(
        **await _reports(session, period, tz),
        **await _alerts(session, period),
        **await _people(session),
    )


# -- the annual summary -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupYear:
    """One group's (a role's) year: reports its people sent and how many went to the
    police, how many of its people had signed up by the year's end, how many an alert
    reached, and how many alerts they confirmed with "understood"."""

    group: str
    reports: int = 0
    passed_to_police: int = 0
    people: int = 0
    reached: int = 0
    understood: int = 0


@dataclass(frozen=True, slots=True)
class Year:
    """The figures a partnership reports once a year, by group and in total."""

    year: int
    groups: list[GroupYear]
    total: GroupYear
    alerts_sent: int
    alerts_by_topic: Counts


def year_period(year: int, tz: tzinfo) -> Period:
    return Period(datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz))


async def _police(session: AsyncSession, references: list[str]) -> set[str]:
    """Which of these reports were passed to the police at some point (now or before)."""
    found = set(
        (
            await session.scalars(
                select(Report.reference).where(
                    Report.reference.in_(references), Report.status == POLICE
                )
            )
        ).all()
    )
    changes = await session.execute(
        select(AuditEntry.subject, AuditEntry.details).where(
            AuditEntry.action == "report_status", AuditEntry.subject.in_(references)
        )
    )
    found |= {ref for ref, details in changes.all()
              if isinstance(details, dict) and details.get("status") == POLICE}  # fmt: skip
    return found


async def annual(session: AsyncSession, year: int, tz: tzinfo) -> Year:
    """The year's figures by group (the reporter's role; "unknown" for a reporter who has
    erased themselves)."""
    period = year_period(year, tz)
    reports = (
        await session.execute(
            select(Report.reference, User.role)
            .outerjoin(User, User.id == Report.user_id)
            .where(*period.where(Report.created_at))
        )
    ).all()
    police = await _police(session, [reference for reference, _role in reports])
    people = (
        await session.execute(
            select(User.role, func.count())
            .where(
                User.consent_at.is_not(None), User.consent_at < period.until, User.active.is_(True)
            )
            .group_by(User.role)
        )
    ).all()
    chosen = select(Broadcast.id).where(*period.where(Broadcast.send_at))
    reached = (
        await session.execute(
            select(User.role, func.count(func.distinct(User.id)))
            .join(OutboxMessage, OutboxMessage.user_id == User.id)
            .where(OutboxMessage.broadcast_id.in_(chosen), OutboxMessage.status == "sent")
            .group_by(User.role)
        )
    ).all()
    understood = (
        await session.execute(
            select(User.role, func.count())
            .join(Acknowledgement, Acknowledgement.user_id == User.id)
            .where(Acknowledgement.broadcast_id.in_(chosen))
            .group_by(User.role)
        )
    ).all()
    topics = (
        await session.execute(
            select(Broadcast.topic, func.count(func.distinct(Broadcast.id)))
            .join(OutboxMessage, OutboxMessage.broadcast_id == Broadcast.id)
            .where(Broadcast.id.in_(chosen))
            .group_by(Broadcast.topic)
        )
    ).all()
    counts: dict[str, dict[str, int]] = {}

    def add(role: str | None, field: str, value: int) -> None:
        row = counts.setdefault(role or UNKNOWN, {})
        row[field] = row.get(field, 0) + int(value)

    for reference, role in reports:
        add(role, "reports", 1)
        add(role, "passed_to_police", int(reference in police))
    for field, rows in (("people", people), ("reached", reached), ("understood", understood)):
        for role, value in rows:
            add(role, field, value)
    groups = [GroupYear(group, **values) for group, values in sorted(counts.items())]
    total = GroupYear(
        "",
        **{
            field: sum(getattr(row, field) for row in groups)
            for field in ("reports", "passed_to_police", "people", "reached", "understood")
        },
    )
    by_topic = _sorted(Counter({str(topic): int(n) for topic, n in topics}))
    return Year(year, groups, total, sum(n for _t, n in by_topic), by_topic)
