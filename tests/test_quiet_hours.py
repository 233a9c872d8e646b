"""Quiet hours in the participant's own zone: across midnight, and on DST days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.quiet_hours import InvalidQuietHours, InvalidTimeZone, QuietHours, is_quiet, quiet_ends_at, zone
from ivr.speech import spoken_time

NIGHT = QuietHours.parse("21:00-09:00")
LUNCH = QuietHours.parse("12:00-13:30")


@pytest.mark.parametrize(
    ("quiet", "tz", "utc", "expected"),
    [
        (NIGHT, "America/New_York", datetime(2026, 11, 17, 2, 30), True),  # 21:30 local
        (NIGHT, "America/New_York", datetime(2026, 11, 17, 1, 59), False),  # 20:59 local
        (NIGHT, "America/New_York", datetime(2026, 11, 17, 13, 59), True),  # 08:59 local
        (NIGHT, "America/New_York", datetime(2026, 11, 17, 14, 0), False),  # 09:00 local
        (LUNCH, "Europe/Berlin", datetime(2026, 7, 1, 10, 15), True),  # 12:15 CEST
        (LUNCH, "Europe/Berlin", datetime(2026, 7, 1, 11, 30), False),  # 13:30 CEST
        (NIGHT, "Pacific/Kiritimati", datetime(2026, 1, 1, 8, 0), True),  # 22:00 at UTC+14
        (NIGHT, "Pacific/Pago_Pago", datetime(2026, 1, 1, 8, 0), True),  # 21:00 at UTC-11
        (None, "America/New_York", datetime(2026, 1, 1, 8, 0), False),
    ],
)
def test_a_phone_is_quiet_by_its_own_wall_clock(
    quiet: QuietHours | None, tz: str, utc: datetime, expected: bool
) -> None:
    assert is_quiet(quiet, tz, utc.replace(tzinfo=UTC)) is expected


def test_quiet_hours_crossing_midnight_end_the_next_morning() -> None:
    ends = quiet_ends_at(NIGHT, "America/New_York", datetime(2026, 11, 17, 3, 0, tzinfo=UTC))
    assert ends == datetime(2026, 11, 17, 14, 0, tzinfo=UTC)


def test_quiet_hours_end_by_local_time_on_the_night_clocks_go_back() -> None:
    # 1 November 2026: New York leaves daylight time at 02:00; 09:00 is then EST (UTC-5)
    ends = quiet_ends_at(NIGHT, "America/New_York", datetime(2026, 11, 1, 3, 0, tzinfo=UTC))
    assert ends == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)


def test_quiet_hours_end_by_local_time_on_the_night_clocks_go_forward() -> None:
    # 8 March 2026: New York springs forward; 09:00 is EDT (UTC-4)
    ends = quiet_ends_at(NIGHT, "America/New_York", datetime(2026, 3, 8, 4, 0, tzinfo=UTC))
    assert ends == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


def test_a_window_ending_in_the_skipped_hour_ends_at_a_real_instant() -> None:
    quiet = QuietHours.parse("01:00-02:30")
    ends = quiet_ends_at(quiet, "America/New_York", datetime(2026, 3, 8, 6, 30, tzinfo=UTC))  # 01:30 EST
    assert ends > datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert not is_quiet(quiet, "America/New_York", ends)


def test_when_not_quiet_the_phone_may_ring_now() -> None:
    now = datetime(2026, 11, 17, 16, 0, tzinfo=UTC)
    assert quiet_ends_at(NIGHT, "America/New_York", now) == now


@pytest.mark.parametrize("text", ["", "9-5", "25:00-07:00", "21:00-21:00", "21:60-07:00", "evening"])
def test_malformed_quiet_hours_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(InvalidQuietHours, match="quiet hours"):
        QuietHours.parse(text)


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "EST5EDT;drop", "../../etc/passwd"])
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(InvalidTimeZone):
        zone(name)


@pytest.mark.parametrize(
    ("local", "today", "words"),
    [
        (datetime(2026, 1, 2, 9, 0), datetime(2026, 1, 1, 22, 0), "tomorrow after 9 in the morning"),
        (datetime(2026, 1, 1, 19, 30), datetime(2026, 1, 1, 12, 0), "after 7:30 in the evening"),
        (datetime(2026, 1, 1, 12, 0), datetime(2026, 1, 1, 7, 0), "after 12 noon"),
    ],
)
def test_times_are_spoken_in_plain_words(local: datetime, today: datetime, words: str) -> None:
    assert spoken_time(local, today) == words
