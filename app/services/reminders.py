"""Reminder calls for quiet pairs: exactly once per participant and quiet period.

Two phases, each safe to run in several processes at once:

  schedule  for every active pair whose next quiet period has begun, insert one
            reminder per partner keyed by (participant, period start) -- computed
            from the data, so concurrent sweeps insert the same key and the unique
            constraint lets one through -- and flag pairs quiet two periods in a row.
  place     claim due reminders one at a time (SELECT ... FOR UPDATE SKIP LOCKED on
            PostgreSQL; SQLite's BEGIN IMMEDIATE serialises), mark them `placing` and
            commit before calling Twilio, then record the call SID. A placement whose
            outcome is unknown (timeout, 5xx) is marked `unknown` and never re-sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.crypto import PhoneVault
from app.models import AttentionFlag, Call, Pair, Participant, Reminder
from app.services.participants import quiet_hours_of
from app.services.policy import Policy
from app.services.upsert import insert_ignore, insert_ignore_many
from ivr import reminders as policy_rules
from ivr.flow import Urls

log = logging.getLogger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
UNANSWERED = ("no_answer", "busy", "failed", "declined")


class CallPlacer(Protocol):
    """What the sweep needs from Twilio: `client.calls.create(...)`."""

    @property
    def calls(self) -> Any: ...


@dataclass
class SweepReport:
    scheduled: int = 0
    flagged: int = 0
    placed: int = 0
    deferred: int = 0
    cancelled: int = 0
    failed: int = 0
    unknown: int = 0
    rate_limited: int = 0

    def __str__(self) -> str:
        return (
            f"scheduled {self.scheduled}, flagged {self.flagged}, placed {self.placed}, "
            f"deferred {self.deferred}, cancelled {self.cancelled}, failed {self.failed}, "
            f"unknown {self.unknown}, rate-limited {self.rate_limited}"
        )


# ---------------------------------------------------------------- hooks from the call flow


def contact_made(db: Session, pair: Pair, at: datetime, *, policy: Policy) -> None:
    """A contact resets the pair's quiet clock and cancels reminders still waiting."""
    pair.last_contact_at = at
    pair.next_reminder_at = at + policy.contact_period
    db.execute(
        update(Reminder)
        .where(Reminder.pair_id == pair.id, Reminder.state == "pending", Reminder.period_start <= at)
        .values(state="cancelled", updated_at=at)
        .execution_options(synchronize_session=False)
    )


def reminder_call_ended(db: Session, call: Call, *, now: datetime, policy: Policy) -> None:
    """The reminder call is over: answered, or try again later, or give up. Idempotent."""
    reminder = _reminder_of(db, call)
    if reminder is None or reminder.state != "calling" or reminder.call_sid != call.twilio_call_sid:
        return
    status = call.status or "failed"
    reminder.updated_at = now
    if status == "completed":
        reminder.state = "machine" if call.end_reason == "answering machine" else "answered"
        return
    retry = policy_rules.retry_time(now, reminder.attempts, status)
    if retry is None:
        reminder.state = "unanswered"
    else:
        reminder.state, reminder.next_attempt_at = "pending", retry


def _reminder_of(db: Session, call: Call) -> Reminder | None:
    if call.reminder_id is not None:
        return db.get(Reminder, call.reminder_id, with_for_update=True)
    return db.scalar(select(Reminder).where(Reminder.call_sid == call.twilio_call_sid).with_for_update())


# ---------------------------------------------------------------- phase 1: schedule


def schedule(db: Session, now: datetime, policy: Policy) -> tuple[int, int]:
    """Create this period's reminders for every pair that has gone quiet. Returns (reminders, flags).

    Set-wise: one read of the due pairs (an index on next_reminder_at, never call
    history), one multi-row insert of reminders, one read for flags.
    """
    due = list(
        db.scalars(
            select(Pair).where(
                Pair.ended_at.is_(None),
                or_(Pair.next_reminder_at <= now, Pair.next_reminder_at.is_(None)),
            )
        )
    )
    if not due:
        return 0, 0
    ids = {p.participant_a_id for p in due} | {p.participant_b_id for p in due}
    callable_ids = set(
        db.scalars(
            select(Participant.id).where(
                Participant.id.in_(ids),
                Participant.status == "active",
                Participant.phone_ciphertext.is_not(None),
            )
        )
    )
    # a reminder still waiting from an earlier period is no longer wanted: one per period
    db.execute(
        update(Reminder)
        .where(Reminder.state == "pending", Reminder.period_start <= now - policy.contact_period)
        .values(state="superseded", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    rows: list[dict[str, object]] = []
    second_periods: dict[int, datetime] = {}
    for pair in due:
        period = policy_rules.current_quiet_period(
            pair.last_contact_at, pair.started_at, policy.contact_period, now
        )
        if period is None:
            pair.next_reminder_at = policy_rules.quiet_since(
                pair.last_contact_at, pair.started_at, policy.contact_period
            )
            continue
        for person_id in (pair.participant_a_id, pair.participant_b_id):
            if person_id in callable_ids:
                rows.append(
                    {
                        "participant_id": person_id,
                        "pair_id": pair.id,
                        "period_start": period.start,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": period.start,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        if period.is_second_in_a_row:
            second_periods[pair.id] = period.start
        pair.next_reminder_at = period.start + policy.contact_period
    created = sum(
        insert_ignore_many(db, Reminder, rows[i : i + 500], ["participant_id", "period_start"])
        for i in range(0, len(rows), 500)
    )
    flagged = (
        _flag(db, {p.id: p for p in due if p.id in second_periods}, second_periods, now)
        if second_periods
        else 0
    )
    return created, flagged


def _flag(db: Session, pairs: dict[int, Pair], periods: dict[int, datetime], now: datetime) -> int:
    """Put pairs quiet two periods in a row on the attention list, unless there already."""
    already = set(
        db.scalars(
            select(AttentionFlag.pair_id).where(
                AttentionFlag.pair_id.in_(pairs), AttentionFlag.cleared_at.is_(None)
            )
        )
    )
    todo = [p for pid, p in pairs.items() if pid not in already]
    if not todo:
        return 0
    unanswered = dict(
        db.execute(
            select(Call.pair_id, func.count(Call.id))
            .join(Pair, Pair.id == Call.pair_id)
            .where(
                Call.pair_id.in_([p.id for p in todo]),
                Call.kind == "reminder",
                Call.started_at >= func.coalesce(Pair.last_contact_at, Pair.started_at),
                or_(Call.outcome.in_(UNANSWERED), Call.end_reason == "answering machine"),
            )
            .group_by(Call.pair_id)
        ).all()
    )
    rows = [
        {
            "pair_id": pair.id,
            "period_start": periods[pair.id],
            "reason": policy_rules.attention_reason(
                (now - (pair.last_contact_at or pair.started_at)).days, unanswered.get(pair.id, 0)
            ),
            "raised_at": now,
        }
        for pair in todo
    ]
    return sum(
        insert_ignore_many(db, AttentionFlag, rows[i : i + 500], ["pair_id", "period_start"])
        for i in range(0, len(rows), 500)
    )


# ---------------------------------------------------------------- phase 2: place


@dataclass(frozen=True)
class Placement:
    reminder_id: int
    participant_id: int
    pair_id: int
    phone: str


def claim_next(
    db: Session, vault: PhoneVault, now: datetime, policy: Policy, report: SweepReport
) -> Placement | None:
    """Claim one due reminder for this process, or None when there is nothing left to do now."""
    while True:
        reminder = db.scalar(
            select(Reminder)
            .where(Reminder.state == "pending", Reminder.next_attempt_at <= now)
            .order_by(Reminder.next_attempt_at, Reminder.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if reminder is None:
            return None
        reminder.updated_at = now
        person = db.get(Participant, reminder.participant_id)
        pair = db.get(Pair, reminder.pair_id)
        phone = vault.decrypt(person.phone_ciphertext) if person and person.phone_ciphertext else None
        if (
            person is None
            or person.status != "active"
            or phone is None
            or pair is None
            or pair.ended_at is not None
            or (pair.last_contact_at is not None and pair.last_contact_at >= reminder.period_start)
        ):
            reminder.state = "cancelled"
            report.cancelled += 1
            continue
        ring_at = policy_rules.next_call_time(
            now, person.timezone, policy.reminder_window, quiet_hours_of(person)
        )
        if ring_at is None:
            reminder.state, reminder.last_error = "failed", "no allowed hours outside quiet hours"
            report.failed += 1
            continue
        if ring_at > now:
            reminder.next_attempt_at = ring_at
            report.deferred += 1
            continue
        reminder.state = "placing"
        reminder.attempts += 1
        return Placement(reminder.id, person.id, pair.id, phone)


def place_due(
    make_session: sessionmaker[Session],
    vault: PhoneVault,
    client: CallPlacer,
    *,
    now: datetime,
    policy: Policy,
    urls: Urls,
    programme_number: str,
    report: SweepReport,
) -> None:
    while True:
        with make_session() as db:
            placement = claim_next(db, vault, now, policy, report)
            db.commit()
        if placement is None:
            return
        outcome = _call_twilio(client, placement, urls, programme_number)
        with make_session() as db:
            stop = _record_placement(db, placement, outcome, now=now, policy=policy, report=report)
            db.commit()
        if stop:
            return


@dataclass(frozen=True)
class _Outcome:
    sid: str | None = None
    kind: str = "placed"  # placed | rate_limited | unknown | failed
    detail: str = ""


def _call_twilio(client: CallPlacer, placement: Placement, urls: Urls, programme_number: str) -> _Outcome:
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ConnectTimeout
    from twilio.base.exceptions import TwilioRestException

    try:
        call = client.calls.create(
            to=placement.phone,
            from_=programme_number,
            url=urls.step("reminder"),
            method="POST",
            status_callback=urls.status,
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            machine_detection="Enable",
        )
    except TwilioRestException as exc:
        if exc.status == 429:
            return _Outcome(kind="rate_limited", detail="Twilio answered 429")
        if exc.status >= 500:
            return _Outcome(kind="unknown", detail=f"Twilio answered {exc.status}")
        return _Outcome(kind="failed", detail=f"Twilio refused the call ({exc.status}, code {exc.code})")
    except ConnectTimeout:
        # the request never reached Twilio: safe to try again later
        return _Outcome(kind="rate_limited", detail="could not connect to Twilio")
    except RequestsConnectionError as exc:
        if "Connection refused" in str(exc) or "Failed to establish" in str(exc):
            return _Outcome(kind="rate_limited", detail="could not connect to Twilio")
        return _Outcome(kind="unknown", detail="connection to Twilio broke; the call may have been placed")
    except Exception as exc:  # a timeout after sending: Twilio may have placed the call
        return _Outcome(kind="unknown", detail=f"{type(exc).__name__} while placing the call")
    return _Outcome(sid=str(call.sid))


BACK_OFF = timedelta(minutes=2)


def _record_placement(
    db: Session,
    placement: Placement,
    outcome: _Outcome,
    *,
    now: datetime,
    policy: Policy,
    report: SweepReport,
) -> bool:
    """Write down what Twilio said. Returns True when the sweep should stop placing calls."""
    reminder = db.get(Reminder, placement.reminder_id, with_for_update=True)
    assert reminder is not None
    reminder.updated_at = now
    if outcome.kind == "rate_limited":
        reminder.state, reminder.attempts = "pending", max(0, reminder.attempts - 1)
        reminder.last_error = outcome.detail
        # the limit is the account's, not this reminder's: every waiting call backs off
        db.flush()
        db.execute(
            update(Reminder)
            .where(Reminder.state == "pending", Reminder.next_attempt_at < now + BACK_OFF)
            .values(next_attempt_at=now + BACK_OFF)
            .execution_options(synchronize_session="fetch")
        )
        report.rate_limited += 1
        log.warning("reminder %s deferred: %s", reminder.id, outcome.detail)
        return True
    if outcome.kind in ("unknown", "failed"):
        reminder.state, reminder.last_error = outcome.kind, outcome.detail
        setattr(report, outcome.kind, getattr(report, outcome.kind) + 1)
        log.warning("reminder %s %s: %s", reminder.id, outcome.kind, outcome.detail)
        return False
    assert outcome.sid is not None
    reminder.state, reminder.call_sid, reminder.last_error = "calling", outcome.sid, None
    # the status callback may have arrived first and made the row: fill it in either way
    insert_ignore(
        db,
        Call,
        {
            "twilio_call_sid": outcome.sid,
            "kind": "reminder",
            "started_at": now,
            "outcome": "in_progress",
            "id_tries": 0,
        },
        ["twilio_call_sid"],
    )
    call = db.scalar(select(Call).where(Call.twilio_call_sid == outcome.sid).with_for_update())
    assert call is not None
    call.kind, call.reminder_id = "reminder", reminder.id
    call.pair_id = call.pair_id or placement.pair_id
    call.initiator_id = call.initiator_id or placement.participant_id
    report.placed += 1
    if call.status in ("completed", "busy", "no-answer", "failed", "canceled"):
        from app.services.calls import refresh_outcome

        refresh_outcome(db, call, policy, now=now)
    return False


# ---------------------------------------------------------------- the sweep


def sweep(
    make_session: sessionmaker[Session],
    vault: PhoneVault,
    client: CallPlacer,
    *,
    now: datetime,
    policy: Policy,
    urls: Urls,
    programme_number: str,
) -> SweepReport:
    report = SweepReport()
    with make_session() as db:
        report.scheduled, report.flagged = schedule(db, now, policy)
        db.commit()
    place_due(
        make_session,
        vault,
        client,
        now=now,
        policy=policy,
        urls=urls,
        programme_number=programme_number,
        report=report,
    )
    return report
