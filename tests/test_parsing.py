"""What a typed answer means: pure functions of (step, text, now, time zone), no database."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.forms import Input, Invalid, Step, parse_moment, parse_number, parse_typed
from bot.core.forms.model import FormState

BERLIN = ZoneInfo("Europe/Berlin")
# 15:45 in Berlin on 5 November 2026 (UTC+1).
NOW = datetime(2026, 11, 5, 14, 45, tzinfo=ZoneInfo("UTC"))


def hint(call: object) -> str:
    with pytest.raises(Invalid) as caught:
        call()  # type: ignore[operator]
    return caught.value.key


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("14:30", "14:30"), ("14.30", "14:30"), ("1430", "14:30"), ("9", "09:00"),
     ("2", "02:00"), ("14", "14:00"), ("930", "09:30"), ("14:30 Uhr", "14:30"),
     ("14h", "14:00"), ("godz. 7:05", "07:05")],
)  # fmt: skip
def test_a_time_of_day_is_today_in_the_deployments_zone(typed: str, expected: str) -> None:
    moment = parse_moment(typed, Input.TIME, NOW, BERLIN)
    assert moment.tzinfo == BERLIN and moment.date().isoformat() == "2026-11-05"
    assert moment.strftime("%H:%M") == expected


def test_observations_lie_in_the_past_and_within_a_year() -> None:
    assert hint(lambda: parse_moment("18:00", Input.TIME, NOW, BERLIN)) == "form.future_time"
    assert parse_moment("15:46", Input.TIME, NOW, BERLIN).minute == 46  # a clock a bit ahead
    assert hint(lambda: parse_moment("1.1.2020 10:00", Input.DATETIME, NOW, BERLIN)) == (
        "form.too_old"
    )
    assert hint(lambda: parse_moment("32.10.2026 10:00", Input.DATETIME, NOW, BERLIN)) == (
        "form.need_datetime"
    )
    day = parse_moment("24.10.2026 22:15", Input.DATETIME, NOW, BERLIN)
    assert (day.day, day.hour, day.minute) == (24, 22, 15)
    assert parse_moment("3.11.2026", Input.DATETIME, NOW, BERLIN).hour == 0
    assert parse_moment("11:00", Input.DATETIME, NOW, BERLIN).day == 5  # a time: today


def test_schedules_lie_in_the_future_and_a_past_time_of_day_is_tomorrow() -> None:
    later = parse_moment("18:00", Input.DATETIME, NOW, BERLIN, "future")
    assert (later.day, later.hour) == (5, 18)
    tomorrow = parse_moment("08:00", Input.DATETIME, NOW, BERLIN, "future")
    assert (tomorrow.day, tomorrow.hour) == (6, 8)
    assert hint(
        lambda: parse_moment("01.11.2026 10:00", Input.DATETIME, NOW, BERLIN, "future")
    ) == ("form.need_future")
    assert hint(
        lambda: parse_moment("01.01.2028 10:00", Input.DATETIME, NOW, BERLIN, "future")
    ) == ("form.too_far")


@pytest.mark.parametrize("typed", ["gestern", "25:00", "14:61", "", "²", "١٢:٠٠"])
def test_what_is_no_time_gets_the_format_hint(typed: str) -> None:
    assert hint(lambda: parse_moment(typed, Input.TIME, NOW, BERLIN)) == "form.need_time"


def test_numbers_are_whole_ascii_numbers_within_bounds() -> None:
    assert parse_number(" 3 ", 1, 50) == 3 and parse_number("3+", 1, 50) == 3
    for typed in ("0", "51", "drei", "3.5", "²", "٣", "1" * 7):
        assert hint(lambda typed=typed: parse_number(typed, 1, 50)) == "form.need_number"


def test_a_typed_answer_is_what_the_step_wants() -> None:
    text = Step("plate", Input.TEXT, "q")
    assert parse_typed(text, "2", NOW, BERLIN) == "2"  # a number typed at a text question
    count = Step("n", Input.NUMBER, "q", minimum=1, maximum=50)
    assert parse_typed(count, "2", NOW, BERLIN) == 2
    place = Step("place", Input.LOCATION, "q", allow_text=True)
    assert parse_typed(place, "Autohof Lippetal", NOW, BERLIN) == {"text": "Autohof Lippetal"}
    gps_only = Step("place", Input.LOCATION, "q")
    assert hint(lambda: parse_typed(gps_only, "Lippetal", NOW, BERLIN)) == "form.need_location"
    when = Step("when", Input.TIME, "q")
    assert parse_typed(when, "2", NOW, BERLIN) == "2026-11-05T02:00:00+01:00"


def test_a_draft_reads_back_what_it_wrote_and_ignores_unknown_keys() -> None:
    state = FormState(step="place", answers={"urgent": "no"}, trail=["urgent"], input="location")
    data = {**state.dump(), "legacy": 1}
    assert FormState.load(data) == state
    assert FormState.load({}) == FormState()
