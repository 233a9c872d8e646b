"""Reminder rows for quiet pairs: exactly one per participant and quiet period.

  schedule  for every active pair whose next quiet period has begun, insert one
            reminder per partner keyed by (participant, period start) -- computed
            from the data, so concurrent sweeps insert the same key and the unique
            constraint lets one through -- and flag pairs quiet two periods in a row.
            What restarts the quiet clock is REMINDER_TRIGGER: a contact (the default),
            or any call one partner attempted to the other (the trials' rule).
  hooks     the call flow tells a reminder that its call ended, and a pair that it
            made contact; this module never calls back into the call flow.

Placing the calls is the sweep's part: app/services/sweep.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from app.models import AttentionFlag, Call, Pair, Participant, Reminder
from app.services.cursor import OnCursor
from app.services.engagement import REMINDER_BRIDGED
from app.services.policy import Policy
from app.services.upsert import insert_new
from ivr import reminders as policy_rules
from ivr.vocab import CallKind, CallStatus, EndReason, ParticipantStatus, ReminderState

# A call one partner attempted to the other (REMINDER_TRIGGER=attempt): a peer call from an
# identified partner, whatever came of it (unanswered, refused, too short, the partner in
# quiet hours or on another call), or a reminder call the participant turned into a call to
# the partner (pressed 1). Staff outreach and reminder calls that rang no partner are the
# programme's calls, not the pair's, and restart nothing.
ATTEMPTED = or_(and_(Call.kind == CallKind.PEER, Call.initiator_id.is_not(None)), REMINDER_BRIDGED)


def last_attempts(db: Session, pair_ids: list[int]) -> dict[int, datetime]:
    """Each pair's last attempted call, for the pairs asked about (an index on the pair's calls)."""
    found: dict[int, datetime] = {}
    for i in range(0, len(pair_ids), 500):
        for pair_id, last in db.execute(
            select(Call.pair_id, func.max(Call.started_at))
            .where(Call.pair_id.in_(pair_ids[i : i + 500]), ATTEMPTED)
            .group_by(Call.pair_id)
        ):
            if pair_id is not None:
                found[pair_id] = last
    return found


def attempted_since(db: Session, pair_id: int, since: datetime) -> bool:
    """Whether the pair has attempted a call since `since`."""
    hit = db.scalar(
        select(Call.id).where(Call.pair_id == pair_id, Call.started_at >= since, ATTEMPTED).limit(1)
    )
    return hit is not None


# ---------------------------------------------------------------- hooks from the call flow


def contact_made(db: Session, pair_id: int, at: datetime, *, policy: Policy) -> None:
    """A contact resets the pair's quiet clock and cancels reminders still waiting.

    Only a contact later than the last one known moves the clock: one UPDATE that
    finds nothing to change otherwise (a repeat, or an earlier contact told late).
    """
    moved = _CONTACT.count(db, {"c_pair": pair_id, "c_at": at, "c_next": at + policy.contact_period})
    if moved == 1:
        _CANCEL_WAITING.count(db, {"c_pair": pair_id, "c_at": at})


# built once and run on the cursor (app/services/cursor.py): on every contact, building
# them cost more than running them, and Core's execution as much again
_CONTACT = OnCursor(
    update(Pair)
    .where(
        Pair.id == bindparam("c_pair"),
        or_(Pair.last_contact_at.is_(None), Pair.last_contact_at < bindparam("c_at")),
    )
    .values(last_contact_at=bindparam("c_at"), next_reminder_at=bindparam("c_next")),
    "c_pair",
    "c_at",
    "c_next",
)
_CANCEL_WAITING = OnCursor(
    update(Reminder)
    .where(
        Reminder.pair_id == bindparam("c_pair"),
        Reminder.state == ReminderState.PENDING,
        Reminder.period_start <= bindparam("c_at"),
    )
    .values(state=ReminderState.CANCELLED, updated_at=bindparam("c_at")),
    "c_pair",
    "c_at",
)


def reminder_call_ended(db: Session, call: Call, *, now: datetime) -> None:
    """The reminder call is over: answered, or try again later, or give up. Idempotent.

    Every callback that comes after the call's end asks again: the reminder is read
    (and locked) as plain columns, and written only the first time (Core, past the
    session, which holds no reminder here).
    """
    if call.reminder_id is not None:
        found = _REMINDER_BY_ID.first(db, {"b_id": call.reminder_id})
    else:
        found = _REMINDER_BY_SID.first(db, {"b_sid": call.twilio_call_sid})
    if found is None:
        return
    reminder_id, state, call_sid, attempts = found
    if state != ReminderState.CALLING or call_sid != call.twilio_call_sid:
        return
    new_state, retry_at = policy_rules.after_call(
        call.status or CallStatus.FAILED,
        # the reminded person's own phone: a machine on the partner's leg, after they
        # pressed 1 to be put through, means the reminder itself was heard by a person
        heard_by_machine=call.end_reason == EndReason.ANSWERING_MACHINE and call.bridged_at is None,
        attempts=attempts,
        now=now,
    )
    if retry_at is None:
        _REMINDER_ENDED.count(db, {"b_id": reminder_id, "b_state": new_state, "b_now": now})
    else:
        _REMINDER_RETRIED.count(
            db, {"b_id": reminder_id, "b_state": new_state, "b_now": now, "b_at": retry_at}
        )


_REMINDER_COLUMNS = (Reminder.id, Reminder.state, Reminder.call_sid, Reminder.attempts)
_REMINDER_BY_ID = OnCursor(
    select(*_REMINDER_COLUMNS).where(Reminder.id == bindparam("b_id")).with_for_update(), "b_id"
)
_REMINDER_BY_SID = OnCursor(
    select(*_REMINDER_COLUMNS).where(Reminder.call_sid == bindparam("b_sid")).limit(1).with_for_update(),
    "b_sid",
)
_ENDED = (
    update(Reminder)
    .where(Reminder.id == bindparam("b_id"))
    .values(state=bindparam("b_state"), updated_at=bindparam("b_now"))
)
_REMINDER_ENDED = OnCursor(_ENDED, "b_id", "b_state", "b_now")
_REMINDER_RETRIED = OnCursor(
    _ENDED.values(next_attempt_at=bindparam("b_at")), "b_id", "b_state", "b_now", "b_at"
)


# ---------------------------------------------------------------- phase 1: schedule


def schedule(db: Session, now: datetime, policy: Policy) -> tuple[int, int]:
    """Create this period's reminders for every pair that has gone quiet. Returns (reminders, flags).

    Set-wise: one read of the due pairs (an index on next_reminder_at, never call
    history), one multi-row insert of reminders, one read for flags.

    `next_reminder_at` is the earliest moment a pair can be quiet: a contact moves it on
    as it happens (contact_made). Attempts do not (the call flow tells this module only
    of contacts), so with REMINDER_TRIGGER=attempt the pairs it finds are candidates: one
    grouped read of their last attempts (an index on the pair's calls) says which are
    quiet, and moves the others' `next_reminder_at` on to a period after that attempt.
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
                Participant.status == ParticipantStatus.ACTIVE,
                Participant.phone_ciphertext.is_not(None),
            )
        )
    )
    # a reminder still waiting from an earlier period is no longer wanted: one per period
    db.execute(
        update(Reminder)
        .where(Reminder.state == ReminderState.PENDING, Reminder.period_start <= now - policy.contact_period)
        .values(state=ReminderState.SUPERSEDED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    attempts = last_attempts(db, [p.id for p in due]) if policy.reminder_trigger == "attempt" else {}
    rows: list[dict[str, object]] = []
    second_periods: dict[int, datetime] = {}
    for pair in due:
        reset = policy_rules.quiet_clock_reset(
            pair.last_contact_at, attempts.get(pair.id), policy.reminder_trigger
        )
        period = policy_rules.current_quiet_period(reset, pair.started_at, policy.contact_period, now)
        if period is None:
            pair.next_reminder_at = policy_rules.quiet_since(reset, pair.started_at, policy.contact_period)
            continue
        for person_id in (pair.participant_a_id, pair.participant_b_id):
            if person_id in callable_ids:
                rows.append(
                    {
                        "participant_id": person_id,
                        "pair_id": pair.id,
                        "period_start": period.start,
                        "state": ReminderState.PENDING,
                        "attempts": 0,
                        "next_attempt_at": period.start,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        if period.is_second_in_a_row:
            second_periods[pair.id] = period.start
        pair.next_reminder_at = period.start + policy.contact_period
    created = _insert_new(db, _NEW_REMINDERS, rows)
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
                Call.kind == CallKind.REMINDER,
                Call.started_at >= func.coalesce(Pair.last_contact_at, Pair.started_at),
                or_(
                    Call.outcome.in_(policy_rules.UNANSWERED),
                    Call.end_reason == EndReason.ANSWERING_MACHINE,
                ),
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
    return _insert_new(db, _NEW_FLAGS, rows)


def _insert_new(db: Session, statements: dict[str, Insert], rows: list[dict[str, object]]) -> int:
    """Insert the rows that are not there yet (one statement for many rows); how many were new."""
    if not rows:
        return 0
    statement = statements[db.get_bind().dialect.name]
    return len(db.connection().execute(statement, rows).all())


_NEW_REMINDERS = insert_new(
    Reminder.__table__,
    [
        "participant_id",
        "pair_id",
        "period_start",
        "state",
        "attempts",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ],
    ["participant_id", "period_start"],
)
_NEW_FLAGS = insert_new(
    AttentionFlag.__table__, ["pair_id", "period_start", "reason", "raised_at"], ["pair_id", "period_start"]
)
