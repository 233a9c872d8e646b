"""The reminder policy as plain arithmetic: periods, allowed hours, retries, reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.quiet_hours import QuietHours
from ivr.reminders import (
    after_call,
    attention_reason,
    current_quiet_period,
    next_call_time,
    retry_time,
)
from ivr.vocab import CallStatus, ReminderState

WEEK = timedelta(days=7)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days_later", "expected"),
    [(6.9, None), (7, (7, 0)), (13.9, (7, 0)), (14, (14, 1)), (30, (28, 3))],
)
def test_a_pair_is_quiet_a_period_after_it_was_made_and_periods_follow_each_other(
    days_later: float, expected: tuple[int, int] | None
) -> None:
    period = current_quiet_period(None, T0, WEEK, T0 + timedelta(days=days_later))
    if expected is None:
        assert period is None
    else:
        assert period is not None
        assert (period.start, period.number) == (T0 + timedelta(days=expected[0]), expected[1])


def test_the_quiet_clock_starts_again_at_the_last_contact() -> None:
    contact = T0 + timedelta(days=10)
    assert current_quiet_period(contact, T0, WEEK, T0 + timedelta(days=16)) is None
    period = current_quiet_period(contact, T0, WEEK, T0 + timedelta(days=17))
    assert period is not None and period.start == contact + WEEK


def test_a_window_wholly_inside_quiet_hours_never_rings() -> None:
    assert next_call_time(T0, "UTC", QuietHours.parse("10:00-12:00"), QuietHours.parse("09:00-13:00")) is None


def test_within_the_window_the_phone_may_ring_now() -> None:
    assert next_call_time(T0, "UTC") == T0


@pytest.mark.parametrize(
    ("attempts", "status", "retry"),
    [
        (1, CallStatus.NO_ANSWER, True),
        (2, CallStatus.BUSY, True),
        (2, CallStatus.FAILED, True),
        (3, CallStatus.NO_ANSWER, False),
        (1, CallStatus.COMPLETED, False),
    ],
)
def test_retries_only_on_no_answer_busy_or_failed_and_at_most_twice(
    attempts: int, status: CallStatus, retry: bool
) -> None:
    result = retry_time(T0, attempts, status)
    assert (result == T0 + timedelta(hours=2)) if retry else result is None


def test_attention_reasons_read_naturally() -> None:
    assert attention_reason(14, 4) == "no contact for 2 weeks; 4 reminder calls unanswered"
    assert attention_reason(15, 1) == "no contact for 15 days; 1 reminder call unanswered"


@pytest.mark.parametrize(
    ("status", "machine", "attempts", "expected"),
    [
        pytest.param(
            CallStatus.COMPLETED, False, 1, (ReminderState.ANSWERED, None), id="answered by a person: done"
        ),
        pytest.param(
            CallStatus.COMPLETED, True, 1, (ReminderState.MACHINE, None), id="answered by a machine: done"
        ),
        pytest.param(
            CallStatus.NO_ANSWER,
            False,
            1,
            (ReminderState.PENDING, T0 + timedelta(hours=2)),
            id="no answer with tries left: again in two hours",
        ),
        pytest.param(
            CallStatus.BUSY, False, 3, (ReminderState.UNANSWERED, None), id="busy on the last try: unanswered"
        ),
        pytest.param(
            CallStatus.CANCELED, False, 1, (ReminderState.UNANSWERED, None), id="cancelled: not tried again"
        ),
    ],
)
def test_where_a_reminder_stands_after_its_call(
    status: CallStatus, machine: bool, attempts: int, expected: tuple[ReminderState, datetime | None]
) -> None:
    assert after_call(status, heard_by_machine=machine, attempts=attempts, now=T0) == expected
