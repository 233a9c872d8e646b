"""The reminder policy: when a pair is quiet, which period a reminder belongs to, when to ring.

All of it is arithmetic on plain datetimes, so every sweep in every process computes
the same period for the same pair, and a unique key lets only one reminder through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal

from ivr.quiet_hours import QuietHours, is_quiet, zone
from ivr.vocab import CallStatus, Outcome, ReminderState

MAX_ATTEMPTS = 3  # the first call and up to two retries
RETRY_AFTER = timedelta(hours=2)
RETRY_STATUSES = frozenset({CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.FAILED})
DEFAULT_WINDOW = QuietHours.parse("10:00-19:00")  # a window of allowed hours, same shape
# reminder calls that reached no one who talked, as the attention list counts them
# (with those an answering machine took)
UNANSWERED = (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED, Outcome.DECLINED)

# What restarts a pair's quiet clock (REMINDER_TRIGGER): a contact, this service's rule; or
# any call one partner attempted to the other, answered or not, the trials' rule ("no
# call attempted in 7 days"), kept for programmes that must follow the trials' protocol.
ReminderTrigger = Literal["contact", "attempt"]


@dataclass(frozen=True)
class QuietPeriod:
    start: datetime
    number: int  # 0 for the first period without contact, 1 for the second in a row, ...

    @property
    def is_second_in_a_row(self) -> bool:
        return self.number >= 1


def quiet_clock_reset(
    last_contact_at: datetime | None, last_attempt_at: datetime | None, trigger: ReminderTrigger
) -> datetime | None:
    """When the pair's quiet clock last restarted: at its last contact, or, when attempts
    count (`attempt`), at its last attempted call if that came later. None: never since
    pairing (the clock runs from the pairing)."""
    if trigger == "contact" or last_attempt_at is None:
        return last_contact_at
    if last_contact_at is None:
        return last_attempt_at
    return max(last_contact_at, last_attempt_at)


def quiet_since(last_contact_at: datetime | None, started_at: datetime, period: timedelta) -> datetime:
    """When the pair's first quiet period begins (or began): a period after the quiet
    clock last restarted (`last_contact_at`, see quiet_clock_reset), or after pairing."""
    return (last_contact_at or started_at) + period


def current_quiet_period(
    last_contact_at: datetime | None, started_at: datetime, period: timedelta, now: datetime
) -> QuietPeriod | None:
    """The quiet period `now` falls in, or None while the pair is not quiet."""
    first = quiet_since(last_contact_at, started_at, period)
    if now < first:
        return None
    number = int((now - first) / period)
    return QuietPeriod(first + number * period, number)


def in_allowed_hours(now: datetime, tz_name: str, window: QuietHours, quiet: QuietHours | None) -> bool:
    local = now.astimezone(zone(tz_name)).time().replace(tzinfo=None)
    return window.contains(local) and not is_quiet(quiet, tz_name, now)


def next_call_time(
    now: datetime, tz_name: str, window: QuietHours = DEFAULT_WINDOW, quiet: QuietHours | None = None
) -> datetime | None:
    """The first moment from `now` when this person's phone may ring for a reminder.

    Candidates are `now` and every start of the window or end of quiet hours over the
    next three local days; the earliest one that is allowed wins. None when the window
    lies wholly inside the quiet hours.
    """
    tz = zone(tz_name)
    local_today = now.astimezone(tz).date()
    boundaries: list[time] = [window.start] + ([quiet.end] if quiet else [])
    candidates = [now]
    for day in range(3):
        date = local_today + timedelta(days=day)
        for at in boundaries:
            # through UTC and back, so a wall time skipped by DST becomes a real instant
            moment = datetime.combine(date, at, tzinfo=tz).astimezone(UTC)
            if moment >= now:
                candidates.append(moment)
    allowed = [c for c in sorted(candidates) if in_allowed_hours(c, tz_name, window, quiet)]
    return allowed[0].astimezone(UTC) if allowed else None


def retry_time(finished_at: datetime, attempts: int, status: CallStatus) -> datetime | None:
    """When to try again after an unanswered reminder call, or None when it is over."""
    if status not in RETRY_STATUSES or attempts >= MAX_ATTEMPTS:
        return None
    return finished_at + RETRY_AFTER


def after_call(
    status: CallStatus, *, heard_by_machine: bool, attempts: int, now: datetime
) -> tuple[ReminderState, datetime | None]:
    """Where a reminder stands once its call is over, and when to ring again if at all.

    A call that was answered, by a person or a machine, is done: a machine heard the
    short message. Anything else is retried while attempts remain.
    """
    if status == CallStatus.COMPLETED:
        return (ReminderState.MACHINE if heard_by_machine else ReminderState.ANSWERED), None
    retry = retry_time(now, attempts, status)
    if retry is None:
        return ReminderState.UNANSWERED, None
    return ReminderState.PENDING, retry


def attention_reason(days_without_contact: int, unanswered_reminders: int) -> str:
    if days_without_contact % 7 == 0:
        weeks = days_without_contact // 7
        span = f"{weeks} week" + ("s" if weeks != 1 else "")
    else:
        span = f"{days_without_contact} days"
    calls = f"{unanswered_reminders} reminder call" + ("s" if unanswered_reminders != 1 else "")
    return f"no contact for {span}; {calls} unanswered"
