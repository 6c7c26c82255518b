"""Typed answers: pure functions of (step, raw text, now, time zone). No database, no I/O.

Each returns the value to store or raises `Invalid` with the content key of the hint.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from bot.core.forms.model import Input, Invalid, Step

# A time of day: "14:30", "14.30", "14", "9" (hours, and minutes after a separator), or
# "1430" and "930" (four or three digits). Two digits are hours: "14" is 14:00.
TIME_OF_DAY = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?|(\d{1,2})(\d{2})")
DATETIME_FORMATS = (
    "%d.%m.%Y %H:%M",
    "%d.%m.%y %H:%M",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H.%M",
    "%d.%m.%Y",
    "%Y-%m-%d",
)
# How far an observation may lie back, and how much clock skew a "now" may have.
OLDEST = timedelta(days=366)
SKEW = timedelta(minutes=2)
NUMBER = re.compile(r"\d{1,6}")


def parse_typed(step: Step, text: str, now: datetime, tz: tzinfo) -> Any:
    """The answer a person typed at a step that expects typed input."""
    match step.kind:
        case Input.TEXT:
            return text
        case Input.NUMBER:
            return parse_number(text, step.minimum, step.maximum)
        case Input.TIME | Input.DATETIME:
            return parse_moment(text, step.kind, now, tz, step.direction).isoformat()
        case Input.LOCATION if step.allow_text:
            return {"text": text}
        case Input.LOCATION:
            raise Invalid("form.need_location")
    raise Invalid("form.need_value")


def parse_number(text: str, minimum: int, maximum: int) -> int:
    """A whole number within bounds; '3+' and ' 3 ' read as 3."""
    cleaned = text.strip().rstrip("+").strip()
    if not cleaned.isascii() or not NUMBER.fullmatch(cleaned):
        raise Invalid("form.need_number", minimum=minimum, maximum=maximum)
    number = int(cleaned)
    if not minimum <= number <= maximum:
        raise Invalid("form.need_number", minimum=minimum, maximum=maximum)
    return number


def parse_moment(
    text: str,
    kind: Input,
    now: datetime,
    tz: tzinfo,
    direction: Literal["past", "future"] = "past",
) -> datetime:
    """A time of day or a date and time in the deployment's zone.

    `past`: an observation — not in the future, not more than a year ago; a time of day is
    today. `future`: a schedule — later than now; a time of day already past is tomorrow.
    Time steps take a time of day; date-time steps take a date and time, or a time of day.
    """
    cleaned = " ".join(re.sub(r"(?i)\buhr\b|(?<=\d)h\b|\bgodz\.?", " ", text).split())
    local_now = now.astimezone(tz)
    clock = _time_of_day(cleaned)
    if clock is not None:
        moment = local_now.replace(hour=clock[0], minute=clock[1], second=0, microsecond=0)
        if direction == "future" and moment <= local_now:
            moment += timedelta(days=1)
        return _bounded(moment, local_now, direction)
    if kind is Input.DATETIME:
        for pattern in DATETIME_FORMATS:
            try:
                parsed = datetime.strptime(cleaned, pattern)
            except ValueError:
                continue
            return _bounded(parsed.replace(tzinfo=tz), local_now, direction)
    raise Invalid("form.need_time" if kind is Input.TIME else "form.need_datetime")


def _time_of_day(text: str) -> tuple[int, int] | None:
    """(hour, minute) of a time of day as people type it, or None."""
    found = TIME_OF_DAY.fullmatch(text) if text.isascii() else None
    if found is None:
        return None
    hour, minute = found.group(1) or found.group(3), found.group(2) or found.group(4) or "0"
    if int(hour) > 23 or int(minute) > 59:
        return None
    return int(hour), int(minute)


def _bounded(moment: datetime, now: datetime, direction: str) -> datetime:
    if direction == "future":
        if moment <= now:
            raise Invalid("form.need_future")
        if moment > now + OLDEST:
            raise Invalid("form.too_far")
        return moment
    if moment > now + SKEW:
        raise Invalid("form.future_time")
    if moment < now - OLDEST:
        raise Invalid("form.too_old")
    return moment
