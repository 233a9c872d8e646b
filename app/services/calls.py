"""Recording what happens on a call: one row per call, updated only forward.

What a call counts as is decided in `ivr.flow` from what is recorded here; a reminder
call's end and a contact are passed on to `app.services.reminders`, which never calls
back into this module. Requests to Twilio's REST API that follow from a change come
back as `Outbound` data, to be made after the commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

import ivr.flow as flow
from app.crypto import PhoneVault
from app.models import (
    Call,
    CareTeamMessage,
    ConferenceEvent,
    KeyedIdFailure,
    Pair,
    Participant,
    Reminder,
    UTCDateTime,
)
from app.services import reminders
from app.services.cursor import OnCursor
from app.services.outbound import EndLeg, Outbound, PlacePartnerLeg, RedirectLeg
from app.services.participants import quiet_hours_of, stored_quiet_hours
from app.services.policy import Policy
from app.services.upsert import NewRow
from app.twilio.forms import ConferenceCallback, Recording, StatusCallback
from ivr.vocab import (
    TERMINAL,
    AnsweredBy,
    CallKind,
    CallStatus,
    EndReason,
    Leg,
    Outcome,
    ParticipantStatus,
    Place,
    ReminderState,
    StepName,
)

log = logging.getLogger(__name__)

# A call whose final status never came must not make its people "busy" for ever.
LIVE_AT_MOST = timedelta(hours=3)
# what the app tells a leg that means the call is over for it: told at most once
FINAL_TELLS = (StepName.PARTNER_GONE, StepName.PARTNER_UNREACHED)


def _rank(status: CallStatus | None) -> int:
    return -1 if status is None else status.rank


def new_room() -> str:
    """An opaque room name: nothing in it says who is in the room."""
    return "room-" + secrets.token_hex(12)


def open_call(
    db: Session,
    sid: str,
    *,
    now: datetime,
    kind: CallKind = CallKind.PEER,
    caller_index: str | None = None,
) -> Call:
    """The call's row, created on first sight; a repeated webhook finds the same row.

    Most requests about a call come after its first: the row is looked for (and locked)
    first, and inserted only when it is not there. Two first sights at once both insert;
    the unique SID lets one through and both then read that row.
    """
    call = db.scalar(_FIND_CALL, {"sid": sid})
    if call is not None:
        return call
    _inserted(db, _NEW_CALL, _first_sight(sid, now=now, kind=kind, caller_index=caller_index))
    call = db.scalar(_FIND_CALL, {"sid": sid})
    assert call is not None
    return call


def _first_sight(sid: str, *, now: datetime, kind: CallKind, caller_index: str | None) -> dict[str, Any]:
    return {
        "twilio_call_sid": sid,
        "kind": kind,
        "started_at": now,
        "caller_index": caller_index,
        "outcome": Outcome.IN_PROGRESS,
        "id_tries": 0,
        "caller_stepped_out": 0,
        "partner_stepped_out": 0,
    }


def new_reminder_call(
    db: Session, sid: str, *, now: datetime, reminder_id: int, pair_id: int, participant_id: int
) -> bool:
    """The row of a reminder call the sweep has just placed, made whole in one INSERT.
    False when a status callback came first and made the row: the caller fills it in."""
    return _inserted(
        db,
        _NEW_REMINDER_CALL,
        {
            "twilio_call_sid": sid,
            "kind": CallKind.REMINDER,
            "started_at": now,
            "caller_index": None,
            "outcome": Outcome.IN_PROGRESS,
            "id_tries": 0,
            "caller_stepped_out": 0,
            "partner_stepped_out": 0,
            "reminder_id": reminder_id,
            "pair_id": pair_id,
            "initiator_id": participant_id,
        },
    )


# ---------------------------------------------------------------- a call's row, without the ORM
#
# Most webhooks and callbacks about a call read its row, change a few columns and end.
# Through the ORM that cost a query into the identity map and a unit-of-work flush at the
# commit (about a quarter of a millisecond, more than the rest of the step). Here the row
# is read (and locked) as plain columns into a Call that no session knows, the code that
# decides changes it as it would any Call, and `save` writes the columns that changed in
# one UPDATE, as the flush would have. Such a Call is never added to a session (it would
# be taken for a new row) and must be saved before the transaction commits.

_CALLS = cast(Table, Call.__table__)
_KEYS = tuple(column.key for column in _CALLS.columns)
_ROW = select(*_CALLS.columns)
_ROW_BY_SID = OnCursor(_ROW.where(_CALLS.c.twilio_call_sid == bindparam("sid")).with_for_update(), "sid")
_ROW_BY_ROOM = OnCursor(_ROW.where(_CALLS.c.room == bindparam("room")).with_for_update(), "room")
_ROW_BY_ID = OnCursor(_ROW.where(_CALLS.c.id == bindparam("call")).with_for_update(), "call")
_AS_READ = "_peerline_as_read"  # the row's values as read, kept on the instance for `save`
_NEW_INSTANCE = Call.__mapper__.class_manager.new_instance


def _detached(row: Any) -> Call:
    values = dict(zip(_KEYS, row, strict=True))
    call: Call = _NEW_INSTANCE()
    # straight into the instance's dict: an instrumented set per column costs more than the read
    call.__dict__.update(values)
    call.__dict__[_AS_READ] = values
    return call


def read_call(db: Session, sid: str) -> Call | None:
    """The call with this SID as a plain row (locked), or None; `save` writes it back."""
    row = _ROW_BY_SID.first(db, {"sid": sid})
    return _detached(row) if row is not None else None


def read_room(db: Session, room: str) -> Call | None:
    """The call whose room this is, as a plain row (locked); `save` writes it back."""
    row = _ROW_BY_ROOM.first(db, {"room": room})
    return _detached(row) if row is not None else None


def read_call_by_id(db: Session, call_id: int) -> Call | None:
    row = _ROW_BY_ID.first(db, {"call": call_id})
    return _detached(row) if row is not None else None


def read_or_open_call(db: Session, sid: str, *, now: datetime, kind: CallKind = CallKind.PEER) -> Call:
    """`open_call`, as a plain row: the call's row, created on first sight."""
    call = read_call(db, sid)
    if call is not None:
        return call
    _inserted(db, _NEW_CALL, _first_sight(sid, now=now, kind=kind, caller_index=None))
    call = read_call(db, sid)
    assert call is not None
    return call


def in_room(db: Session, room: str | None, sid: str | None) -> tuple[Call, Leg] | None:
    """The call whose room a step's URL names (a plain row), and which of its legs is asking."""
    if room is None:
        return None
    call = read_room(db, room)
    if call is None:
        return None
    leg = leg_of(call, sid)
    return (call, leg) if leg is not None else None


def save(db: Session, call: Call) -> None:
    """Write what changed on a call read by `read_call`/`read_room`: one UPDATE, or none."""
    state = call.__dict__
    was: dict[str, Any] = state[_AS_READ]
    changed = tuple(key for key in _KEYS if state.get(key) != was[key])
    if not changed:
        return
    _update_of(changed).count(db, {"w_id": was["id"], **{"v_" + key: state.get(key) for key in changed}})
    # saved: what is written now is what a later save compares with
    state[_AS_READ] = {key: state.get(key) for key in _KEYS}


@cache
def _update_of(keys: tuple[str, ...]) -> OnCursor:
    """The UPDATE of these columns, built once (a step changes one of a few sets of them)."""
    return OnCursor(
        update(_CALLS)
        .where(_CALLS.c.id == bindparam("w_id"))
        .values({key: bindparam("v_" + key) for key in keys}),
        "w_id",
        *("v_" + key for key in keys),
    )


def find_call(db: Session, sid: str) -> Call | None:
    return db.scalar(_FIND_CALL, {"sid": sid})


def leg_of(call: Call, sid: str | None) -> Leg | None:
    """Which leg of this call a request comes from; the partner's SID is learnt on first sight."""
    if sid is None:
        return None
    if sid == call.twilio_call_sid:
        return Leg.CALLER
    if call.partner_call_sid is None:
        call.partner_call_sid = sid
    return Leg.PARTNER if sid == call.partner_call_sid else None


def bridge_facts(call: Call) -> flow.Bridge:
    return flow.Bridge(
        room=call.room or "",
        accepted=call.accepted_at is not None,
        caller_status=call.status,
        caller_place=call.caller_place,
        partner_status=call.partner_status,
        partner_place=call.partner_place,
        partner_placed=call.partner_call_sid is not None,
    )


# ---------------------------------------------------------------- facts for ivr


def caller_facts(
    db: Session,
    vault: PhoneVault,
    person: Participant,
    *,
    now: datetime,
    exclude_call_id: int | None = None,
) -> flow.Caller:
    me = flow.Person(person.id, person.name, person.timezone, quiet_hours_of(person))
    if person.status != ParticipantStatus.ACTIVE or person.active_pair_id is None:
        return flow.Caller(me)
    # the pair and the partner in one read, as plain columns
    found = _PAIR_AND_PARTNER.first(db, {"pair": person.active_pair_id, "me": person.id})
    if found is None:
        return flow.Caller(me)
    pair_id, pair_ended, other_id, other_name, other_zone, other_quiet, other_status, reachable = found
    if pair_ended is not None:
        return flow.Caller(me)
    if other_id is None or other_status != ParticipantStatus.ACTIVE or not reachable:
        return flow.Caller(me, pair_id)
    partner = flow.Partner(
        other_id,
        other_name,
        other_zone,
        stored_quiet_hours(other_quiet),
        on_call=on_live_call(db, other_id, now=now, exclude_call_id=exclude_call_id),
    )
    return flow.Caller(me, pair_id, partner, _missed(db, pair_id, person.id, other_id))


# Built once: on the hot path of every inbound call, building the statement costs more
# than running it.
# since the pair last talked (or was made): the later of the two, found by the database
_SINCE_LAST_TALKED = (
    select(case((Pair.last_contact_at > Pair.started_at, Pair.last_contact_at), else_=Pair.started_at))
    .where(Pair.id == bindparam("pair"))
    .scalar_subquery()
)
MISSED_SINCE = select(func.count(Call.id)).where(
    Call.pair_id == bindparam("pair"),
    Call.initiator_id == bindparam("partner"),
    Call.callee_id == bindparam("me"),
    Call.outcome.in_(flow.MISSED),
    Call.started_at >= _SINCE_LAST_TALKED,
)
_LIVE_CALL = select(Call.id).where(
    Call.started_at >= bindparam("after", type_=UTCDateTime()),
    Call.ended_at.is_(None),
    Call.id != bindparam("exclude"),
    or_(
        # their own call in, or a reminder to them
        Call.initiator_id == bindparam("person"),
        # or they are being rung for someone else's call, or talking in its room
        and_(
            Call.callee_id == bindparam("person"),
            Call.room.is_not(None),
            Call.outcome == Outcome.IN_PROGRESS,
            or_(Call.partner_status.is_(None), Call.partner_status.not_in(list(TERMINAL))),
        ),
    ),
)
_REMINDER_PLACING = select(Reminder.id).where(
    Reminder.participant_id == bindparam("person"), Reminder.state == ReminderState.PLACING
)
# one round trip on the hot path of every call
ON_A_CALL = or_(_LIVE_CALL.exists(), _REMINDER_PLACING.exists())
_ON_A_CALL = OnCursor(select(ON_A_CALL), "person", "after", "exclude")
_MISSED = OnCursor(MISSED_SINCE, "pair", "me", "partner")
_OTHER = aliased(Participant)
_PAIR_AND_PARTNER = OnCursor(
    select(
        Pair.id,
        Pair.ended_at,
        _OTHER.id,
        _OTHER.name,
        _OTHER.timezone,
        _OTHER.quiet_hours,
        _OTHER.status,
        _OTHER.phone_ciphertext.is_not(None),
    )
    .outerjoin(
        _OTHER,
        _OTHER.id
        == case(
            (Pair.participant_a_id == bindparam("me"), Pair.participant_b_id), else_=Pair.participant_a_id
        ),
    )
    .where(Pair.id == bindparam("pair")),
    "pair",
    "me",
)
_FIND_CALL = select(Call).where(Call.twilio_call_sid == bindparam("sid")).with_for_update()
_FAILURES = select(func.count(KeyedIdFailure.id)).where(
    KeyedIdFailure.caller_index == bindparam("caller"),
    KeyedIdFailure.at > bindparam("after", type_=UTCDateTime()),
)
# the room changes kept for a call, read as plain rows (talk time is counted from them)
_EVENTS = OnCursor(
    select(
        ConferenceEvent.event,
        ConferenceEvent.conference_sid,
        ConferenceEvent.participant_sid,
        ConferenceEvent.at,
        ConferenceEvent.sequence_number,
    ).where(ConferenceEvent.call_id == bindparam("call")),
    "call",
)


# ---------------------------------------------------------------- INSERT ... ON CONFLICT DO NOTHING
#
# Built once per dialect with a parameter for every column: callbacks repeat, and these
# run on most of them.


def _inserted(db: Session, row: NewRow, values: dict[str, Any]) -> bool:
    """True when the row is new."""
    return row.made(db, values) is not None


_NEW_CALL = NewRow(
    Call.__table__,
    [
        "twilio_call_sid",
        "kind",
        "started_at",
        "caller_index",
        "outcome",
        "id_tries",
        "caller_stepped_out",
        "partner_stepped_out",
    ],
    ["twilio_call_sid"],
)
_NEW_REMINDER_CALL = NewRow(
    Call.__table__,
    [*_NEW_CALL.columns, "reminder_id", "pair_id", "initiator_id"],
    ["twilio_call_sid"],
)
_EVENT_KEY = ["call_id", "conference_sid", "participant_sid", "event", "at"]
_NEW_EVENT = NewRow(ConferenceEvent.__table__, [*_EVENT_KEY, "sequence_number", "received_at"], _EVENT_KEY)
_NEW_MESSAGE = NewRow(
    CareTeamMessage.__table__,
    ["recording_sid", "participant_id", "call_id", "recording_url", "duration_seconds", "received_at"],
    ["recording_sid"],
)


def _missed(db: Session, pair_id: int, me: int, partner: int) -> int:
    """The partner's calls that did not reach me since we last talked: I am told next time."""
    found = _MISSED.first(db, {"pair": pair_id, "me": me, "partner": partner})
    return int(found[0] or 0) if found is not None else 0


def on_live_call(db: Session, person_id: int, *, now: datetime, exclude_call_id: int | None = None) -> bool:
    """On a live Peerline call: their own, a reminder being placed or answered, or another room."""
    params = {"person": person_id, "after": now - LIVE_AT_MOST, "exclude": exclude_call_id or -1}
    found = _ON_A_CALL.first(db, params)
    return bool(found[0]) if found is not None else False


def is_locked_out(db: Session, caller_index: str, now: datetime) -> bool:
    failures = db.scalar(_FAILURES, {"caller": caller_index, "after": now - flow.LOCKOUT_WINDOW})
    return flow.is_locked_out(failures or 0)


# ---------------------------------------------------------------- effects


def record(
    db: Session,
    call: Call,
    effects: Iterable[flow.Effect],
    *,
    now: datetime,
    policy: Policy,
    recount: bool = False,
) -> list[Outbound]:
    """Write a step's effects on the call; return the REST requests they ask for.

    A step's effects never change the room's joins and leaves, so the talk time kept
    stands; a callback that does change them asks to `recount`.
    """
    outbound: list[Outbound] = []
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
                call.outcome = Outcome.QUIET_HOURS
                call.duration_seconds = 0
            case flow.PartnerOnAnotherCall(partner_id):
                call.callee_id = partner_id
                call.outcome, call.end_reason = Outcome.BUSY, EndReason.PARTNER_ON_ANOTHER_CALL
                call.duration_seconds = 0
            case flow.BridgeStarted(partner_id, room):
                call.callee_id = partner_id
                call.bridged_at = call.bridged_at or now
                call.room = call.room or room
                call.talk_seconds = call.talk_seconds or 0  # nobody can be in the room yet
                call.caller_place = call.caller_place or Place.ROOM
            case flow.RingPartner(partner_id, room):
                # once per call: a repeated webhook finds the leg already asked for
                if call.partner_call_sid is None and call.partner_status is None:
                    call.partner_status = CallStatus.QUEUED
                    outbound.append(PlacePartnerLeg(call.id, partner_id, call.room or room))
            case flow.PartnerAccepted(at):
                call.accepted_at = call.accepted_at or at
            case flow.Moved(leg, place):
                _set_place(call, leg, place)
            case flow.SteppedOut(leg):
                if leg == Leg.CALLER:
                    call.caller_stepped_out += 1
                else:
                    call.partner_stepped_out += 1
            case flow.Tell(leg, step):
                sid = _sid(call, leg)
                if sid is not None and call.room is not None:
                    if step in FINAL_TELLS:
                        _set_place(call, leg, Place.DONE)
                    outbound.append(RedirectLeg(sid, step, call.room))
            case flow.HangUp(leg):
                sid = _sid(call, leg)
                if sid is not None:
                    outbound.append(EndLeg(sid))
            case flow.MachineAnswered(leg, answered_by):
                if leg == Leg.CALLER:
                    call.end_reason = EndReason.ANSWERING_MACHINE
                else:
                    call.partner_answered_by = call.partner_answered_by or answered_by or _MACHINE
    refresh_outcome(db, call, policy, now=now, recount=recount)
    return outbound


_MACHINE = AnsweredBy.MACHINE_START


def _sid(call: Call, leg: Leg) -> str | None:
    return call.twilio_call_sid if leg == Leg.CALLER else call.partner_call_sid


def _set_place(call: Call, leg: Leg, place: Place) -> None:
    if leg == Leg.CALLER:
        call.caller_place = place
    else:
        call.partner_place = place


def refresh_outcome(db: Session, call: Call, policy: Policy, *, now: datetime, recount: bool = True) -> None:
    """Recompute what the call counts as from everything known so far.

    Inputs only ever grow (statuses move forward, conference callbacks are kept, never
    changed), and talk time is computed afresh from all of them, so callbacks in any
    order, or repeated, converge on the same answer.
    """
    ended = call.status is not None and call.status.is_terminal
    if call.outcome == Outcome.QUIET_HOURS or call.end_reason == EndReason.PARTNER_ON_ANOTHER_CALL:
        pass  # decided when the caller was told; nobody was rung
    elif call.bridged_at is None:
        if call.status is not None and ended and call.outcome == Outcome.IN_PROGRESS:
            unbridged = flow.unbridged_ending(
                call.kind, call.status, heard_by_machine=call.end_reason == EndReason.ANSWERING_MACHINE
            )
            call.outcome, call.duration_seconds = unbridged.outcome, unbridged.duration_seconds
            call.end_reason = unbridged.end_reason or call.end_reason
    else:
        _refresh_bridged(db, call, policy, recount=recount)
    if call.kind == CallKind.REMINDER and ended:
        reminders.reminder_call_ended(db, call, now=now)


def _refresh_bridged(db: Session, call: Call, policy: Policy, *, recount: bool) -> None:
    talk = call.talk_seconds
    if recount or talk is None:
        talk = call.talk_seconds = _talk_time(db, call)
    ending = _bridged_ending(call, talk, policy)
    if ending is None:
        return
    call.outcome, call.duration_seconds = ending.outcome, ending.duration_seconds
    call.end_reason = call.end_reason or ending.end_reason
    if ending.outcome == Outcome.CONTACT and call.pair_id is not None and call.accepted_at is not None:
        reminders.contact_made(db, call.pair_id, call.accepted_at, policy=policy)


def _bridged_ending(call: Any, talk: int, policy: Policy) -> flow.Ending | None:
    """What a bridged call ends as, from its row (the ORM's or a plain one) and a talk time;
    None while it is not decided."""
    bridged = flow.BridgedCall(
        accepted=call.accepted_at is not None,
        caller_status=call.status,
        partner_status=call.partner_status,
        machine=call.partner_answered_by is not None and call.partner_answered_by.is_machine,
        talk_seconds=talk,
    )
    return flow.bridged_ending(bridged, min_contact_seconds=policy.min_contact_seconds)


def _talk_time(db: Session, call: Any) -> int:
    """The talk time counted afresh from every room change kept for the call (its row: the
    ORM's or a plain one)."""
    if call.partner_call_sid is None:
        return 0  # nobody else was ever in the room (flow.talk_time)
    changes = [
        flow.RoomChange(event, conference_sid, participant_sid or None, at, sequence)
        for event, conference_sid, participant_sid, at, sequence in _EVENTS.all(db, {"call": call.id})
    ]
    return flow.talk_time(
        changes,
        caller_sid=call.twilio_call_sid,
        partner_sid=call.partner_call_sid,
        caller_ended_at=call.ended_at,
        partner_ended_at=call.partner_ended_at,
    )


# ---------------------------------------------------------------- callbacks


def apply_status(db: Session, callback: StatusCallback, *, now: datetime, policy: Policy) -> list[Outbound]:
    """A leg's status changed. When a leg of a bridged call ends, the other is told."""
    sid, status = callback.call_sid, callback.call_status
    if sid is None or status is None:
        return []
    at = callback.timestamp or now
    if callback.room is None and callback.parent_call_sid is None and _progressed(db, callback, at):
        return []
    if callback.room is not None and _partner_progressed(db, callback):
        return []
    seconds = callback.call_duration
    # the call's row as plain columns, written back once at the end (save)
    call: Call | None
    if callback.room is not None:
        call = read_room(db, callback.room)
        if call is None:
            log.info("status callback for a room no call has")
            return []
        leg = leg_of(call, sid)
        if leg is None:
            return []  # a leg we did not place for this call
    elif callback.parent_call_sid is not None:
        # a leg dialled with <Dial><Number> (the nurse line, or a call from before the rooms)
        call = read_call(db, callback.parent_call_sid)
        if call is None:
            return []
        if status.is_terminal and seconds is not None:
            call.dial_seconds = max(seconds, call.dial_seconds or 0)
            save(db, call)
        return []
    else:
        call = read_or_open_call(db, sid, now=now)
        leg = Leg.CALLER
    was_live = flow.Bridge(
        call.room or "", caller_status=call.status, partner_status=call.partner_status
    ).live(leg)
    if leg == Leg.PARTNER:
        if status.rank > _rank(call.partner_status):
            call.partner_status = status
            if status.is_terminal:
                call.partner_ended_at = call.partner_ended_at or at
        if seconds is not None and status.is_terminal:
            call.partner_seconds = max(seconds, call.partner_seconds or 0)
    elif status.rank > _rank(call.status):
        call.status = status
        call.status_sequence = callback.sequence_number
        if status in (CallStatus.IN_PROGRESS, CallStatus.ANSWERED):
            call.answered_at = call.answered_at or at
        if status.is_terminal:
            call.ended_at = call.ended_at or at
    outbound: list[Outbound] = []
    if was_live and status.is_terminal and call.room is not None:
        # a leg's end closes its stretches in the room: the talk time is counted again
        effects = flow.leg_ended(leg, bridge_facts(call))
        outbound = record(db, call, effects, now=now, policy=policy, recount=True)
    else:
        refresh_outcome(db, call, policy, now=now)
    save(db, call)
    return outbound


def _progressed(db: Session, callback: StatusCallback, at: datetime) -> bool:
    """A call's own leg moved forward but has not ended, and no partner was rung for it:
    the status (and when it was answered) is all that changes. One UPDATE, which finds
    nothing to change for a repeat, a callback that came after a later one, a call not
    seen yet, or a bridged call: those take the whole way (apply_status)."""
    status = callback.call_status
    if status is None or status.is_terminal or callback.call_sid is None:
        return False
    done = _progress_statement(status).count(
        db, {"sid": callback.call_sid, "status": status, "sequence": callback.sequence_number, "at": at}
    )
    return done == 1


# The statuses behind this one are written out (`status = 'queued' OR ...`), not as
# `IN (...)`: a list is expanded into the SQL again at every execution.
@cache
def _progress_statement(status: CallStatus) -> OnCursor:
    table = _CALLS.c
    behind = [s for s in CallStatus if s.rank < status.rank]
    values: dict[str, Any] = {"status": bindparam("status"), "status_sequence": bindparam("sequence")}
    if status in (CallStatus.IN_PROGRESS, CallStatus.ANSWERED):
        values["answered_at"] = func.coalesce(table.answered_at, bindparam("at", type_=UTCDateTime()))
    return OnCursor(
        update(_CALLS)
        .where(
            table.twilio_call_sid == bindparam("sid"),
            table.bridged_at.is_(None),
            or_(table.status.is_(None), *(table.status == earlier for earlier in behind)),
        )
        .values(values),
        "sid",
        "status",
        "sequence",
        "at",
    )


def _partner_progressed(db: Session, callback: StatusCallback) -> bool:
    """The partner's leg, already known as this room's, moved forward but has not ended:
    its status is all that changes. While that leg is live nothing the call counts as can
    change (an accepted call is judged once both legs have ended, one that was not by how
    the partner's leg ended, a machine when it was detected), and the room's changes and
    both legs' ends, which the talk time is counted from, are as they were. One UPDATE,
    which finds nothing to change for a repeat, a late callback, or a leg not yet learnt:
    those take the whole way (apply_status)."""
    status = callback.call_status
    if status is None or status.is_terminal or callback.call_sid is None:
        return False
    done = _partner_progress_statement(status).count(
        db, {"leg_room": callback.room, "sid": callback.call_sid, "leg_status": status}
    )
    return done == 1


@cache
def _partner_progress_statement(status: CallStatus) -> OnCursor:
    table = _CALLS.c
    behind = [s for s in CallStatus if s.rank < status.rank]
    return OnCursor(
        update(_CALLS)
        .where(
            table.room == bindparam("leg_room"),
            table.partner_call_sid == bindparam("sid"),
            or_(table.partner_status.is_(None), *(table.partner_status == earlier for earlier in behind)),
        )
        .values(partner_status=bindparam("leg_status")),
        "leg_room",
        "sid",
        "leg_status",
    )


def apply_conference(db: Session, callback: ConferenceCallback, *, now: datetime, policy: Policy) -> None:
    """Keep a conference callback as it came (once), then recount the talk time.

    A repeat is kept once and changes nothing: what it says was counted when it first
    came. While the call is not decided by it (the common case: the room changes while
    both legs are live), only the talk time is written (if it changed); otherwise the
    call is refreshed whole (refresh_outcome).
    """
    if callback.room is None or callback.event is None:
        return
    call = read_room(db, callback.room)
    if call is None:
        log.info("conference callback for a room no call has")
        return
    kept = _inserted(
        db,
        _NEW_EVENT,
        {
            "call_id": call.id,
            "conference_sid": callback.conference_sid or "",
            "participant_sid": callback.call_sid or "",
            "event": callback.event,
            "at": callback.timestamp or now,
            "sequence_number": callback.sequence_number,
            "received_at": now,
        },
    )
    if not kept:
        return
    if _counted_in_the_room(call):
        talk = _talk_time(db, call)
        if _bridged_ending(call, talk, policy) is None:
            call.talk_seconds = talk
            save(db, call)
            return
    refresh_outcome(db, call, policy, now=now)
    save(db, call)


def _counted_in_the_room(call: Any) -> bool:
    """A bridged call whose outcome comes from the room (refresh_outcome's third case),
    and not a reminder call that has ended (its reminder is told: the ORM's way)."""
    return bool(
        call.bridged_at is not None
        and call.outcome != Outcome.QUIET_HOURS
        and call.end_reason != EndReason.PARTNER_ON_ANOTHER_CALL
        and not (call.kind == CallKind.REMINDER and call.status is not None and call.status.is_terminal)
    )


def record_message(db: Session, recording: Recording | None, *, now: datetime) -> None:
    """A care-team message exists once its recording is complete; repeats change nothing."""
    if recording is None or not recording.completed:
        return
    call = find_call(db, recording.call_sid) if recording.call_sid else None
    participant_id = call.initiator_id if call else None
    if call is None and recording.call_sid is not None:
        # the partner's leg left it: that leg's call is found by its SID
        call = db.scalar(select(Call).where(Call.partner_call_sid == recording.call_sid))
        participant_id = call.callee_id if call else None
    duration = recording.duration_seconds
    _inserted(
        db,
        _NEW_MESSAGE,
        {
            "recording_sid": recording.recording_sid,
            "participant_id": participant_id,
            "call_id": call.id if call else None,
            "recording_url": recording.url,
            "duration_seconds": duration,
            "received_at": now,
        },
    )
    message = db.scalar(
        select(CareTeamMessage).where(CareTeamMessage.recording_sid == recording.recording_sid)
    )
    if message is not None:
        message.recording_url = message.recording_url or recording.url
        if duration is not None:
            message.duration_seconds = max(duration, message.duration_seconds or 0)


_LANGUAGE = OnCursor(select(Participant.language).where(Participant.id == bindparam("person")), "person")


def language_of(db: Session, participant_id: int) -> str | None:
    """A participant's own language, as stored (one column, not the whole person)."""
    row = _LANGUAGE.first(db, {"person": participant_id})
    return str(row[0]) if row is not None and row[0] is not None else None


_PERSON_KEYS = tuple(column.key for column in cast(Table, Participant.__table__).columns)
_PERSON = OnCursor(
    select(*cast(Table, Participant.__table__).columns).where(
        cast(Table, Participant.__table__).c.id == bindparam("person")
    ),
    "person",
)
_NEW_PERSON = Participant.__mapper__.class_manager.new_instance


def read_person(db: Session, participant_id: int) -> Participant | None:
    """A participant's row as plain columns, to read only: no session knows it."""
    row = _PERSON.first(db, {"person": participant_id})
    if row is None:
        return None
    person: Participant = _NEW_PERSON()
    person.__dict__.update(zip(_PERSON_KEYS, row, strict=True))
    return person
