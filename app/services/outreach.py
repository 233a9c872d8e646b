"""A nurse calls a participant back through Peerline, and a staff member's own phone.

The staff member's phone is kept on their account, encrypted with the same PhoneVault as
participants' numbers (no blind index: nobody is ever looked up by it). An outreach call is one
`call` row of kind `outreach`: the staff member's leg is the row's own call (`twilio_call_sid`),
the participant's leg is its partner leg, both meet in an opaque room. It names the staff member
(`staff_initiator`), never a participant as initiator, so it is not a peer call, never a missed
call a partner is told about, and never a contact: a call that connected is stored with the
outcome `short` (the stored vocabulary has no word for "talked to the care team"; `contact`
would count as the pair talking) and its label says "talked 3 min 10 s".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.models import Call, Participant, StaffUser
from app.services.calls import new_room
from app.services.errors import Conflict, Invalid
from app.services.participants import quiet_hours_of
from ivr.phone import InvalidPhoneNumber, masked, normalise
from ivr.quiet_hours import is_quiet, quiet_ends_at, zone
from ivr.vocab import CallKind, CallStatus, Outcome, ParticipantStatus

REASON_LENGTH = 500
PENDING = "pending-"  # the row's SID until Twilio has answered with the staff leg's


class NoStaffPhone(Conflict):
    """The staff member has not put their own phone on their account yet."""


class InQuietHours(Conflict):
    """The participant is in quiet hours and no override was confirmed."""


@dataclass(frozen=True)
class Me:
    email: str
    role: str
    phone_set: bool
    phone_last2: str | None
    masked_phone: str | None
    digest_hour: int | None


def staff_phone(user: StaffUser, vault: PhoneVault) -> str | None:
    return vault.decrypt(user.phone_ciphertext) if user.phone_ciphertext else None


def me(user: StaffUser, vault: PhoneVault) -> Me:
    phone = staff_phone(user, vault)
    return Me(
        user.email,
        user.role,
        phone is not None,
        phone[-2:] if phone else None,
        masked(phone) if phone else None,
        user.digest_hour,
    )


def set_phone(user: StaffUser, vault: PhoneVault, raw: str, *, region: str) -> str:
    """Keep the staff member's own phone (E.164, encrypted); '' removes it. Returns it masked."""
    if not raw.strip():
        user.phone_ciphertext = None
        return ""
    try:
        e164 = normalise(raw, region)
    except InvalidPhoneNumber as exc:
        raise Invalid(f"phone: {exc}") from None
    user.phone_ciphertext = vault.encrypt(e164)
    return masked(e164)


def set_digest_hour(user: StaffUser, hour: int | None) -> None:
    if hour is not None and not 0 <= hour <= 23:
        raise Invalid("digest hour: a whole hour from 0 to 23")
    user.digest_hour = hour


def in_quiet_hours(person: Participant, now: datetime) -> datetime | None:
    """When the participant's quiet hours end, if they are in them now; None otherwise."""
    quiet = quiet_hours_of(person)
    if quiet is None:
        return None
    try:
        zone(person.timezone)
    except Exception:
        return None
    return quiet_ends_at(quiet, person.timezone, now) if is_quiet(quiet, person.timezone, now) else None


def start(
    db: Session,
    vault: PhoneVault,
    user: StaffUser,
    person: Participant,
    *,
    now: datetime,
    override_reason: str | None = None,
) -> Call:
    """The outreach call's row, before any phone rings. Refused without the staff member's own
    phone, for a removed participant, and in the participant's quiet hours unless the staff
    member gave a reason to ring anyway (the caller audits that override)."""
    if staff_phone(user, vault) is None:
        raise NoStaffPhone("add your own phone number on your account page first (/console/account)")
    if person.status != ParticipantStatus.ACTIVE or person.phone_ciphertext is None:
        raise Conflict(f"participant {person.id} has no number any more (removed on request)")
    reason = (override_reason or "").strip()
    if len(reason) > REASON_LENGTH:
        raise Invalid(f"reason: at most {REASON_LENGTH} characters")
    ends = in_quiet_hours(person, now)
    if ends is not None and not reason:
        local = ends.astimezone(zone(person.timezone))
        raise InQuietHours(
            f"{person.name} is in quiet hours until {local:%H:%M} their time; "
            "to ring anyway, confirm with a reason"
        )
    room = new_room()
    call = Call(
        twilio_call_sid=PENDING + secrets.token_hex(12),
        kind=CallKind.OUTREACH,
        pair_id=person.active_pair_id,
        initiator_id=None,
        callee_id=person.id,
        started_at=now,
        outcome=Outcome.IN_PROGRESS,
        room=room,
        staff_initiator=user.email,
        status=CallStatus.QUEUED,
    )
    db.add(call)
    db.flush()
    return call


def by_room(db: Session, room: str | None) -> Call | None:
    if not room:
        return None
    return db.scalar(select(Call).where(Call.room == room, Call.kind == CallKind.OUTREACH).with_for_update())


def not_placed(call: Call, *, now: datetime, status: CallStatus = CallStatus.FAILED) -> None:
    call.status = status
    call.outcome = Outcome.FAILED if status == CallStatus.FAILED else Outcome.NO_ANSWER
    call.ended_at = call.ended_at or now


def staff_leg_status(call: Call, status: CallStatus, *, now: datetime) -> None:
    """The staff member's own leg moved on; only forward, so repeats and reordering are harmless."""
    if call.status is not None and status.rank < call.status.rank:
        return
    call.status = status
    if status in (CallStatus.IN_PROGRESS, CallStatus.ANSWERED):
        call.answered_at = call.answered_at or now
    if status.is_terminal:
        call.ended_at = call.ended_at or now
        if call.partner_call_sid is None:
            # the participant was never rung: the staff member did not answer or did not press 1
            call.outcome = {
                CallStatus.BUSY: Outcome.BUSY,
                CallStatus.NO_ANSWER: Outcome.NO_ANSWER,
                CallStatus.FAILED: Outcome.FAILED,
            }.get(status, Outcome.DECLINED)
        _settle(call)


def participant_leg_status(call: Call, status: CallStatus, duration: int | None, *, now: datetime) -> None:
    if call.partner_status is not None and status.rank < call.partner_status.rank:
        return
    call.partner_status = status
    if status in (CallStatus.IN_PROGRESS, CallStatus.ANSWERED):
        call.bridged_at = call.bridged_at or now
    if status.is_terminal:
        call.partner_ended_at = call.partner_ended_at or now
        if duration is not None:
            # from the moment the participant answered: the introduction and the talk
            call.talk_seconds = max(call.talk_seconds or 0, duration)
            call.duration_seconds = call.talk_seconds
        _settle(call)


def _settle(call: Call) -> None:
    if call.partner_status is None or not call.partner_status.is_terminal:
        return
    match call.partner_status:
        case CallStatus.COMPLETED:
            # never `contact`: a care-team call is not the pair talking
            call.outcome = Outcome.SHORT
        case CallStatus.BUSY:
            call.outcome = Outcome.BUSY
        case CallStatus.NO_ANSWER | CallStatus.CANCELED:
            call.outcome = Outcome.NO_ANSWER
        case _:
            call.outcome = Outcome.FAILED
