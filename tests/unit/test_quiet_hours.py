"""Quiet hours with fixed clocks: windows across midnight, DST nights, several zones."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from rules.quiet_hours import QuietHours, hold, is_quiet, zones_for_number

LONDON, NEW_YORK, LA = "Europe/London", "America/New_York", "America/Los_Angeles"
NIGHT = QuietHours.parse("21:00-08:00")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def until(due: datetime, window: QuietHours, *zones: str, default: str = "UTC") -> datetime | None:
    held = hold(due, window, zones, default)
    return None if held is None else held.until


def test_parse_and_membership_across_midnight() -> None:
    assert (NIGHT.start, NIGHT.end) == (time(21), time(8))
    assert NIGHT.contains(time(23, 59)) and NIGHT.contains(time(0)) and NIGHT.contains(time(7, 59))
    assert not NIGHT.contains(time(8)) and not NIGHT.contains(time(20, 59))
    day = QuietHours.parse("12:00-13:30")
    assert day.contains(time(12)) and not day.contains(time(13, 30)) and not day.contains(time(1))
    assert str(NIGHT) == "21:00-08:00"


@pytest.mark.parametrize("text", ["21:00", "25:00-08:00", "08:00-08:00", "9-5"])
def test_malformed_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(text)


def test_outside_the_window_nothing_waits() -> None:
    assert until(utc(2026, 6, 1, 12), NIGHT, LONDON) is None  # 13:00 BST


def test_late_evening_waits_for_tomorrow_morning() -> None:
    # 22:30 BST on 1 June -> 08:00 BST on 2 June.
    assert until(utc(2026, 6, 1, 21, 30), NIGHT, LONDON) == utc(2026, 6, 2, 7)


def test_after_midnight_waits_for_the_same_morning() -> None:
    assert until(utc(2026, 6, 2, 2), NIGHT, LONDON) == utc(2026, 6, 2, 7)  # 03:00 BST


def test_a_daytime_window_ends_the_same_day() -> None:
    lunch = QuietHours.parse("12:00-13:30")
    assert until(utc(2026, 1, 5, 12, 10), lunch, LONDON) == utc(2026, 1, 5, 13, 30)


def test_london_spring_forward_night_ends_at_eight_summer_time() -> None:
    # 29 March 2026: clocks go 01:00 GMT -> 02:00 BST; the night is an hour shorter.
    assert until(utc(2026, 3, 28, 23), NIGHT, LONDON) == utc(2026, 3, 29, 7)


def test_london_fall_back_night_ends_at_eight_winter_time() -> None:
    # 25 October 2026: clocks go 02:00 BST -> 01:00 GMT; the night is an hour longer.
    assert until(utc(2026, 10, 24, 22), NIGHT, LONDON) == utc(2026, 10, 25, 8)


def test_new_york_spring_forward_and_fall_back_nights() -> None:
    assert until(utc(2026, 3, 8, 3), NIGHT, NEW_YORK) == utc(2026, 3, 8, 12)  # 08:00 EDT
    assert until(utc(2026, 11, 1, 3), NIGHT, NEW_YORK) == utc(2026, 11, 1, 13)  # 08:00 EST


def test_an_end_inside_the_spring_forward_gap_ends_at_the_jump() -> None:
    # 8 March 2026 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens.
    window = QuietHours.parse("00:00-02:30")
    assert until(utc(2026, 3, 8, 6, 30), window, NEW_YORK) == utc(2026, 3, 8, 7)  # 01:30 EST


def test_an_end_that_happens_twice_on_the_fall_back_night() -> None:
    # 1 November 2026 in New York: 01:00-02:00 is lived twice (EDT, then EST).
    window = QuietHours.parse("00:00-01:30")
    assert until(utc(2026, 11, 1, 5, 10), window, NEW_YORK) == utc(2026, 11, 1, 5, 30)
    # 01:10 EST, the second pass: local time is inside the window again.
    assert is_quiet(utc(2026, 11, 1, 6, 10), ZoneInfo(NEW_YORK), window)
    assert until(utc(2026, 11, 1, 6, 10), window, NEW_YORK) == utc(2026, 11, 1, 6, 30)


def test_several_zones_wait_until_quiet_hours_are_over_in_all_of_them() -> None:
    # 07:59 EDT in New York is 04:59 in Los Angeles: LA's 08:00 decides.
    held = hold(utc(2026, 6, 1, 11, 59), NIGHT, [NEW_YORK, LA], "UTC")
    assert held is not None
    assert (held.until, held.zone) == (utc(2026, 6, 1, 15), LA)
    # Open in New York but quiet in LA (21:30 EDT / 18:30 PDT is fine in LA, not in NY).
    assert until(utc(2026, 6, 2, 1, 30), NIGHT, NEW_YORK, LA) == utc(2026, 6, 2, 15)


def test_zones_that_never_share_open_hours_fall_back_to_the_default() -> None:
    narrow = QuietHours.parse("12:00-11:00")  # open one hour a day, local
    held = hold(utc(2026, 6, 1, 0), narrow, ["Asia/Tokyo", LA], LONDON)
    assert held is not None
    assert (held.until, held.zone) == (utc(2026, 6, 1, 10), LONDON)  # 11:00 BST


def test_the_default_zone_applies_without_any_zone() -> None:
    assert until(utc(2026, 1, 5, 6), NIGHT, default=NEW_YORK) == utc(2026, 1, 5, 13)


def test_phone_numbers_map_to_their_zones() -> None:
    assert zones_for_number("+14155550100") == (LA,)
    assert zones_for_number("+442079460000") == (LONDON,)
    assert set(zones_for_number("+12085550100")) == {"America/Boise", LA}
    assert zones_for_number("+999") == ()
