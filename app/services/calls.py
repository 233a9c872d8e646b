"""Recording what happens on a call: one row per Twilio call, updated only forward."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

import ivr.flow as flow
from app.crypto import PhoneVault
from app.models import Call, CareTeamMessage, KeyedIdFailure, Pair, Participant, UTCDateTime
from app.services import reminders
from app.services.participants import quiet_hours_of
from app.services.policy import Policy
from app.services.upsert import insert_ignore

LOCKOUT_FAILURES = 6
MACHINE = "answering machine"
LOCKOUT_WINDOW = timedelta(hours=1)

_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}
TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
MISSED = (flow.Outcome.NO_ANSWER, flow.Outcome.BUSY, flow.Outcome.DECLINED, flow.Outcome.QUIET_HOURS)


def _rank(status: str | None) -> int:
    if status is None:
        return -1
    return 4 if status in TERMINAL else _RANK.get(status, -1)


def open_call(
    db: Session, sid: str, *, now: datetime, kind: str = "peer", caller_index: str | None = None
) -> Call:
    """The call's row, created on first sight; a repeated webhook finds the same row."""
    values = {
        "twilio_call_sid": sid,
        "kind": kind,
        "started_at": now,
        "outcome": "in_progress",
        "id_tries": 0,
    }
    if caller_index is not None:
        values["caller_index"] = caller_index
    insert_ignore(db, Call, values, ["twilio_call_sid"])
    call = db.scalar(_FIND_CALL, {"sid": sid})
    assert call is not None
    return call


def find_call(db: Session, sid: str) -> Call | None:
    return db.scalar(_FIND_CALL, {"sid": sid})


# ---------------------------------------------------------------- facts for ivr


def caller_facts(
    db: Session, vault: PhoneVault, person: Participant, *, exclude_call_id: int | None = None
) -> flow.Caller:
    me = flow.Person(person.id, person.name, person.timezone, quiet_hours_of(person))
    if person.status != "active" or person.active_pair_id is None:
        return flow.Caller(me)
    pair = db.get(Pair, person.active_pair_id)
    if pair is None or pair.ended_at is not None:
        return flow.Caller(me)
    other = db.get(Participant, pair.partner_of(person.id))
    phone = vault.decrypt(other.phone_ciphertext) if other and other.phone_ciphertext else None
    if other is None or other.status != "active" or phone is None:
        return flow.Caller(me, pair.id)
    partner = flow.Partner(other.id, other.name, other.timezone, quiet_hours_of(other), phone=phone)
    return flow.Caller(me, pair.id, partner, _missed(db, pair, person.id, other.id, exclude_call_id))


# Built once: on the hot path of every inbound call, building the statement costs more
# than running it.
_MY_LAST_CALL = (
    select(func.max(Call.started_at))
    .where(
        Call.pair_id == bindparam("pair"),
        Call.initiator_id == bindparam("me"),
        Call.id != bindparam("exclude"),
    )
    .scalar_subquery()
)
_MISSED_SINCE = select(func.count(Call.id)).where(
    Call.pair_id == bindparam("pair"),
    Call.initiator_id == bindparam("partner"),
    Call.callee_id == bindparam("me"),
    Call.outcome.in_([str(o) for o in MISSED]),
    Call.started_at >= bindparam("since", type_=UTCDateTime()),
    Call.started_at >= func.coalesce(_MY_LAST_CALL, bindparam("since", type_=UTCDateTime())),
)
_FIND_CALL = select(Call).where(Call.twilio_call_sid == bindparam("sid")).with_for_update()
_FAILURES = select(func.count(KeyedIdFailure.id)).where(
    KeyedIdFailure.caller_index == bindparam("caller"),
    KeyedIdFailure.at > bindparam("after", type_=UTCDateTime()),
)


def _missed(db: Session, pair: Pair, me: int, partner: int, exclude: int | None) -> int:
    """Partner's attempts since we last talked or since I last called: they are told next time."""
    since = max(t for t in (pair.started_at, pair.last_contact_at) if t is not None)
    params = {"pair": pair.id, "me": me, "partner": partner, "exclude": exclude or -1, "since": since}
    return db.scalar(_MISSED_SINCE, params) or 0


def is_locked_out(db: Session, caller_index: str, now: datetime) -> bool:
    failures = db.scalar(_FAILURES, {"caller": caller_index, "after": now - LOCKOUT_WINDOW})
    return (failures or 0) >= LOCKOUT_FAILURES


# ---------------------------------------------------------------- effects


def record(db: Session, call: Call, effects: Iterable[flow.Effect], *, now: datetime, policy: Policy) -> None:
    for effect in effects:
        match effect:
            case flow.Identified(participant_id, pair_id):
                call.initiator_id = call.initiator_id or participant_id
                call.pair_id = call.pair_id or pair_id
            case flow.NoticePlayed(version):
                call.notice_version = version
            case flow.WrongNumber():
                call.id_tries += 1
                db.add(
                    KeyedIdFailure(
                        caller_index=call.caller_index or "", call_sid=call.twilio_call_sid, at=now
                    )
                )
            case flow.PartnerInQuietHours(partner_id):
                call.callee_id = partner_id
                call.outcome = flow.Outcome.QUIET_HOURS
                call.duration_seconds = 0
            case flow.BridgeStarted(partner_id):
                call.callee_id = partner_id
                call.bridged_at = call.bridged_at or now
            case flow.PartnerAccepted(at):
                call.accepted_at = call.accepted_at or at
            case flow.DialFinished(status, seconds):
                call.dial_status = call.dial_status or status
                if seconds is not None:
                    call.dial_seconds = max(seconds, call.dial_seconds or 0)
            case flow.MachineAnswered():
                call.end_reason = MACHINE
    refresh_outcome(db, call, policy, now=now)


def refresh_outcome(db: Session, call: Call, policy: Policy, *, now: datetime) -> None:
    """Recompute what the call counts as from everything known so far.

    Inputs only ever grow (durations take the maximum, statuses move forward), so
    callbacks in any order or repeated converge on the same answer.
    """
    if call.outcome == flow.Outcome.QUIET_HOURS:
        return
    if call.bridged_at is None:
        if call.status in TERMINAL and call.outcome == flow.Outcome.IN_PROGRESS:
            _close_unbridged(call)
        if call.kind == "reminder" and call.status in TERMINAL:
            reminders.reminder_call_ended(db, call, now=now, policy=policy)
        return
    known = [s for s in (call.dial_seconds, call.partner_seconds) if s is not None]
    partner_done = call.partner_status in TERMINAL
    talk = max(known) if known and (call.dial_status or partner_done) else None
    status = call.dial_status or (call.partner_status if partner_done else None)
    if call.accepted_at is not None and talk is None and call.status in TERMINAL:
        talk = max(known, default=0)
    outcome = flow.classify(
        accepted=call.accepted_at is not None,
        talk_seconds=talk,
        dial_status=status,
        min_contact_seconds=policy.min_contact_seconds,
    )
    if call.kind == "reminder" and call.status in TERMINAL:
        reminders.reminder_call_ended(db, call, now=now, policy=policy)
    if outcome == flow.Outcome.IN_PROGRESS:
        return
    call.outcome = outcome
    call.duration_seconds = talk if call.accepted_at is not None else 0
    if outcome == flow.Outcome.CONTACT and call.pair_id is not None:
        pair = db.get(Pair, call.pair_id)
        if (
            pair is not None
            and call.accepted_at is not None
            and (pair.last_contact_at is None or pair.last_contact_at < call.accepted_at)
        ):
            reminders.contact_made(db, pair, call.accepted_at, policy=policy)


def _close_unbridged(call: Call) -> None:
    """A call that ended before any partner was dialled."""
    call.duration_seconds = 0
    if call.kind != "reminder":
        call.outcome = flow.Outcome.FAILED
        call.end_reason = "ended before the partner was dialled"
        return
    # a reminder call: how the reminded person's own phone answered
    match call.status:
        case "busy":
            call.outcome = flow.Outcome.BUSY
        case "failed":
            call.outcome = flow.Outcome.FAILED
        case "completed" if call.end_reason != MACHINE:
            call.outcome = flow.Outcome.DECLINED
            call.end_reason = "heard the reminder; did not ask to be connected"
        case _:
            call.outcome = flow.Outcome.NO_ANSWER


# ---------------------------------------------------------------- callbacks


def callback_time(form: dict[str, str], now: datetime) -> datetime:
    try:
        stamp = parsedate_to_datetime(form.get("Timestamp", ""))
    except (TypeError, ValueError, IndexError):
        return now
    return stamp if stamp.tzinfo is not None else now


def to_int(text: str | None) -> int | None:
    try:
        value = int((text or "").strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def apply_status(db: Session, form: dict[str, str], *, now: datetime, policy: Policy) -> None:
    sid = form.get("CallSid", "").strip()
    status = form.get("CallStatus", "").strip().lower()
    if not sid or _rank(status) < 0:
        return
    parent_sid = form.get("ParentCallSid", "").strip()
    at = callback_time(form, now)
    seconds = to_int(form.get("CallDuration"))
    if parent_sid:
        call = open_call(db, parent_sid, now=now)
        call.partner_call_sid = call.partner_call_sid or sid
        if call.partner_call_sid != sid:
            return  # a leg we did not place for this call
        if _rank(status) > _rank(call.partner_status):
            call.partner_status = status
        if seconds is not None and status in TERMINAL:
            call.partner_seconds = max(seconds, call.partner_seconds or 0)
    else:
        call = open_call(db, sid, now=now)
        sequence = to_int(form.get("SequenceNumber"))
        if _rank(status) > _rank(call.status):
            call.status = status
            call.status_sequence = sequence
            if status in ("in-progress", "answered"):
                call.answered_at = call.answered_at or at
            if status in TERMINAL:
                call.ended_at = call.ended_at or at
    refresh_outcome(db, call, policy, now=now)


def record_message(db: Session, form: dict[str, str], *, now: datetime) -> None:
    recording_sid = form.get("RecordingSid", "").strip()
    if not recording_sid or form.get("RecordingStatus", "completed") not in ("completed", ""):
        return
    duration = to_int(form.get("RecordingDuration"))
    call = find_call(db, form.get("CallSid", "").strip())
    insert_ignore(
        db,
        CareTeamMessage,
        {
            "recording_sid": recording_sid,
            "participant_id": call.initiator_id if call else None,
            "call_id": call.id if call else None,
            "recording_url": form.get("RecordingUrl") or None,
            "duration_seconds": duration,
            "received_at": now,
        },
        ["recording_sid"],
    )
    message = db.scalar(select(CareTeamMessage).where(CareTeamMessage.recording_sid == recording_sid))
    if message is not None:
        message.recording_url = message.recording_url or form.get("RecordingUrl") or None
        if duration is not None:
            message.duration_seconds = max(duration, message.duration_seconds or 0)
