"""The reminder sweep: schedule this period's reminders, then place the calls that are due.

Both phases are safe to run in several processes at once:

  schedule  app/services/reminders.py: one reminder per participant and quiet period,
            kept to one by a unique key.
  reconcile reminders stuck `placing` (the process died between the claim and the
            request: no SID, so nothing to ask Twilio about) become `unknown`; ones stuck
            `calling` (the final status callback never came) are asked about with
            `calls(sid).fetch()` and what Twilio says is applied like that callback.
            Neither is ever called again blindly.
  place     claim due reminders one at a time (SELECT ... FOR UPDATE SKIP LOCKED on
            PostgreSQL; SQLite's BEGIN IMMEDIATE serialises), mark them `placing` and
            commit before calling Twilio, then record the call SID. A placement whose
            outcome is unknown (timeout, 5xx) is marked `unknown` and never re-sent.
            The two partners of a pair are rung one after the other: never while the
            other's reminder call is live (and a contact it leads to cancels this one).

The sweep is the one flow that uses both the reminders and the call records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.crypto import PhoneVault
from app.models import Pair, Participant, Reminder
from app.services import calls, reminders
from app.services.cursor import OnCursor
from app.services.participants import stored_quiet_hours
from app.services.policy import Policy
from app.twilio.forms import StatusCallback
from app.twilio.rest import (
    CallPlacer,
    CallUnknown,
    FetchedCall,
    Placed,
    PlaceResult,
    RateLimited,
    Rejected,
    Unknown,
    Unreachable,
    fetch_call,
    place_call,
)
from ivr import reminders as policy_rules
from ivr.flow import Urls
from ivr.vocab import CallKind, ParticipantStatus, ReminderState, StepName

log = logging.getLogger(__name__)

# Twilio waits for the machine's beep before the reminder speaks, so a machine gets the
# short message whole (with `Enable` it plays over the greeting); a machine hears no name
MACHINE_DETECTION = "DetectMessageEnd"
# after a rate limit, every waiting reminder waits at least this long
BACK_OFF = timedelta(minutes=2)
# a reminder `placing` or `calling` this long has lost its process or its last callback
RECONCILE_AFTER = timedelta(minutes=15)
# the other partner's reminder waits this long while the first one's call is live
STAGGER = timedelta(minutes=15)


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
    reconciled: int = 0
    # Twilio could not be reached at all (refused, unresolvable, timed out connecting): not
    # the account's rate limit, and not something waiting two minutes will cure
    unreachable: int = 0

    @property
    def every_placement_failed(self) -> bool:
        """Calls were due and not one of them went out: the operator must hear of it."""
        tried = self.placed + self.failed + self.unknown + self.rate_limited + self.unreachable
        return tried > 0 and self.placed == 0

    def __str__(self) -> str:
        return (
            f"scheduled {self.scheduled}, flagged {self.flagged}, placed {self.placed}, "
            f"deferred {self.deferred}, cancelled {self.cancelled}, failed {self.failed}, "
            f"unknown {self.unknown}, rate-limited {self.rate_limited}, unreachable {self.unreachable}, "
            f"reconciled {self.reconciled}"
        )


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
        report.scheduled, report.flagged = reminders.schedule(db, now, policy)
        db.commit()
    reconcile(make_session, client, now=now, policy=policy, report=report)
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


# ---------------------------------------------------------------- reconciling


def reconcile(
    make_session: sessionmaker[Session],
    client: CallPlacer,
    *,
    now: datetime,
    policy: Policy,
    report: SweepReport,
) -> None:
    """Reminders whose process or whose last callback was lost: asked about, never re-sent."""
    stale = now - RECONCILE_AFTER
    with make_session() as db:
        # no SID was stored, so Twilio cannot be asked about it; and a number is never
        # searched for in Twilio's call list (numbers stay out of URLs and logs)
        lost = cast(
            CursorResult[Any],
            db.execute(
                update(Reminder)
                .where(Reminder.state == ReminderState.PLACING, Reminder.updated_at < stale)
                .values(
                    state=ReminderState.UNKNOWN,
                    last_error="the sweep stopped between claim and request",
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        report.unknown += lost.rowcount
        calling = list(
            db.scalars(
                select(Reminder.id).where(
                    Reminder.state == ReminderState.CALLING,
                    Reminder.updated_at < stale,
                    Reminder.call_sid.is_not(None),
                )
            )
        )
        db.commit()
    for reminder_id in calling:
        with make_session() as db:
            reminder = db.get(Reminder, reminder_id, with_for_update=True)
            if reminder is None or reminder.state != ReminderState.CALLING or reminder.call_sid is None:
                continue
            sid = reminder.call_sid
            # asked again at the next sweep after this, not at every one
            reminder.updated_at = now
            db.commit()
        fetched = fetch_call(client, sid)
        with make_session() as db:
            match fetched:
                case FetchedCall(status, duration, ended_at) if status is not None and status.is_terminal:
                    callback = StatusCallback(
                        call_sid=sid,
                        parent_call_sid=None,
                        call_status=status,
                        call_duration=duration,
                        sequence_number=None,
                        timestamp=ended_at or now,
                    )
                    calls.apply_status(db, callback, now=now, policy=policy)
                    report.reconciled += 1
                case CallUnknown():
                    reminder = db.get(Reminder, reminder_id, with_for_update=True)
                    if reminder is not None and reminder.state == ReminderState.CALLING:
                        reminder.state, reminder.updated_at = ReminderState.UNKNOWN, now
                        reminder.last_error = "Twilio has no such call"
                        report.unknown += 1
                case _:
                    log.info("reminder %s: the call is still live, or Twilio could not say", reminder_id)
            db.commit()


# ---------------------------------------------------------------- placing the calls


@dataclass(frozen=True)
class Placement:
    reminder_id: int
    participant_id: int
    pair_id: int
    phone: str


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
    """Claim, call, record; the record of one call and the claim of the next share a
    transaction. At any moment at most one reminder of this sweep is claimed and not yet
    recorded, as when each had its own: a crash leaves one `placing`, never more."""
    with make_session() as db:
        placement = claim_next(db, vault, now, policy, report)
        db.commit()
    while placement is not None:
        result = place_call(
            client,
            to=placement.phone,
            from_=programme_number,
            url=urls.step(StepName.REMINDER),
            status_callback=urls.status,
            machine_detection=MACHINE_DETECTION,
        )
        with make_session() as db:
            stop = _record_placement(db, placement, result, now=now, policy=policy, report=report)
            placement = None if stop else claim_next(db, vault, now, policy, report)
            db.commit()


# The claim's statements run on the driver's cursor (OnCursor): a sweep runs
# several for every reminder, and SQLAlchemy's own cost per execution was larger than
# SQLite's.
# the next due reminder and its person, locked for this process (another sweep skips it)
_DUE = OnCursor(
    select(
        Reminder.id,
        Reminder.participant_id,
        Reminder.pair_id,
        Reminder.period_start,
        Participant.id,
        Participant.status,
        Participant.phone_ciphertext,
        Participant.timezone,
        Participant.quiet_hours,
    )
    .outerjoin(Participant, Participant.id == Reminder.participant_id)
    .where(Reminder.state == ReminderState.PENDING, Reminder.next_attempt_at <= bindparam("now"))
    .order_by(Reminder.next_attempt_at, Reminder.id)
    .limit(1)
    .with_for_update(skip_locked=True, of=Reminder),
    "now",
)
# the pair's row is the meeting point of two sweeps claiming its two partners at once
_PAIR = OnCursor(
    select(Pair.participant_a_id, Pair.participant_b_id, Pair.ended_at, Pair.last_contact_at)
    .where(Pair.id == bindparam("pair"))
    .with_for_update(),
    "pair",
)
# read after the pair's lock: the partner's reminder call is being placed or is live, or
# this person is on a call of their own (calls.on_live_call)
_PARTNER_REMINDER_LIVE = select(Reminder.id).where(
    Reminder.pair_id == bindparam("pair"),
    Reminder.participant_id == bindparam("partner"),
    or_(Reminder.state == ReminderState.PLACING, Reminder.state == ReminderState.CALLING),
)
_BUSY = OnCursor(
    select(_PARTNER_REMINDER_LIVE.exists(), calls.ON_A_CALL), "pair", "partner", "person", "after", "exclude"
)


def _set(db: Session, reminder_id: int, now: datetime, what: OnCursor, **values: Any) -> None:
    """What became of a claimed reminder, written past the session (it holds no copy of it)."""
    what.count(db, {"b_id": reminder_id, "b_now": now, **values})


def _reminder_update(**values: Any) -> OnCursor:
    """Built once: building an UPDATE for each reminder cost more than running it."""
    return OnCursor(
        update(Reminder)
        .where(Reminder.id == bindparam("b_id"))
        .values(updated_at=bindparam("b_now"), **values),
        # every parameter any of them takes: a name a statement does not have is not sent
        *("b_id", "b_now", "b_at", "b_error", "b_sid"),
    )


_CANCELLED = _reminder_update(state=ReminderState.CANCELLED)
_DEFERRED = _reminder_update(next_attempt_at=bindparam("b_at"))
_FAILED = _reminder_update(state=ReminderState.FAILED, last_error=bindparam("b_error"))
_CLAIMED = _reminder_update(state=ReminderState.PLACING, attempts=Reminder.attempts + 1)
_CALLING = _reminder_update(state=ReminderState.CALLING, call_sid=bindparam("b_sid"), last_error=None)


def claim_next(
    db: Session, vault: PhoneVault, now: datetime, policy: Policy, report: SweepReport
) -> Placement | None:
    """Claim one due reminder for this process, or None when there is nothing left to do now.

    Three reads a reminder (it and its person; its pair, locked; whether anyone is busy)
    and one write: what became of it.
    """
    db.flush()  # the reads below go past the session: nothing of it may be left unwritten
    while True:
        due = _DUE.first(db, {"now": now})
        if due is None:
            return None
        reminder_id, participant_id, pair_id, period_start, person_id, status, ciphertext, tz, quiet = due
        pair = _PAIR.first(db, {"pair": pair_id})
        phone = vault.decrypt(ciphertext) if person_id is not None and ciphertext else None
        a_id, b_id, pair_ended, last_contact = pair if pair is not None else (None, None, None, None)
        if (
            person_id is None
            or status != ParticipantStatus.ACTIVE
            or phone is None
            or pair is None
            or pair_ended is not None
            or (last_contact is not None and last_contact >= period_start)
            or (
                # the trials' rule: a call attempted since the quiet period began ends it too
                policy.reminder_trigger == "attempt" and reminders.attempted_since(db, pair_id, period_start)
            )
        ):
            _set(db, reminder_id, now, _CANCELLED)
            report.cancelled += 1
            continue
        partner = b_id if participant_id == a_id else a_id
        busy = _BUSY.first(
            db,
            {
                "pair": pair_id,
                "partner": partner,
                "person": person_id,
                "after": now - calls.LIVE_AT_MOST,
                "exclude": -1,
            },
        )
        assert busy is not None  # a SELECT of two EXISTS has one row
        partner_live, on_a_call = busy
        if partner_live or on_a_call:
            # never while the first partner's reminder call (or any other call of theirs) is
            # live: "press 1 to talk now" there must not ring a line busy with its own reminder
            _set(db, reminder_id, now, _DEFERRED, b_at=now + STAGGER)
            report.deferred += 1
            continue
        ring_at = policy_rules.next_call_time(now, tz, policy.reminder_window, stored_quiet_hours(quiet))
        if ring_at is None:
            _set(db, reminder_id, now, _FAILED, b_error="no allowed hours outside quiet hours")
            report.failed += 1
            continue
        if ring_at > now:
            _set(db, reminder_id, now, _DEFERRED, b_at=ring_at)
            report.deferred += 1
            continue
        _set(db, reminder_id, now, _CLAIMED)
        return Placement(reminder_id, person_id, pair_id, phone)


def _record_placement(
    db: Session,
    placement: Placement,
    result: PlaceResult,
    *,
    now: datetime,
    policy: Policy,
    report: SweepReport,
) -> bool:
    """Write down what Twilio said. Returns True when the sweep should stop placing calls."""
    if isinstance(result, Placed):
        _set(db, placement.reminder_id, now, _CALLING, b_sid=result.sid)
        report.placed += 1
        made = calls.new_reminder_call(
            db,
            result.sid,
            now=now,
            reminder_id=placement.reminder_id,
            pair_id=placement.pair_id,
            participant_id=placement.participant_id,
        )
        if not made:
            # the status callback arrived first and made the row: fill it in
            call = calls.open_call(db, result.sid, now=now, kind=CallKind.REMINDER)
            call.kind, call.reminder_id = CallKind.REMINDER, placement.reminder_id
            call.pair_id = call.pair_id or placement.pair_id
            call.initiator_id = call.initiator_id or placement.participant_id
            if call.status is not None and call.status.is_terminal:
                # the call already ended before we knew it was ours
                calls.refresh_outcome(db, call, policy, now=now)
        return False
    reminder = db.get(Reminder, placement.reminder_id, with_for_update=True)
    assert reminder is not None
    reminder.updated_at = now
    match result:
        case RateLimited(detail) | Unreachable(detail):
            # no call went out: this attempt does not count
            reminder.state, reminder.attempts = ReminderState.PENDING, max(0, reminder.attempts - 1)
            reminder.last_error = detail
            # the limit is the account's, not this reminder's: every waiting call backs off
            db.flush()
            db.execute(
                update(Reminder)
                .where(Reminder.state == ReminderState.PENDING, Reminder.next_attempt_at < now + BACK_OFF)
                .values(next_attempt_at=now + BACK_OFF)
                .execution_options(synchronize_session="fetch")
            )
            if isinstance(result, Unreachable):
                report.unreachable += 1
            else:
                report.rate_limited += 1
            log.warning("reminder %s deferred: %s", reminder.id, detail)
            return True
        case Unknown(detail):
            reminder.state, reminder.last_error = ReminderState.UNKNOWN, detail
            report.unknown += 1
            log.warning("reminder %s unknown: %s", reminder.id, detail)
            return False
        case Rejected(detail):
            reminder.state, reminder.last_error = ReminderState.FAILED, detail
            report.failed += 1
            log.warning("reminder %s failed: %s", reminder.id, detail)
            return False
        case _:
            raise AssertionError(f"not a placement result: {result!r}")
