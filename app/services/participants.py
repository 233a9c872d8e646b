"""Enrolling participants, making pairs, and finding a participant by phone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.models import Pair, Participant
from app.services.errors import Conflict, Invalid, NotFound
from ivr.phone import InvalidPhoneNumber, normalise
from ivr.quiet_hours import InvalidQuietHours, InvalidTimeZone, QuietHours, zone


def enrolment_problems(
    *, name: str, phone: str, timezone: str, quiet_hours: str | None, region: str = "US"
) -> list[Invalid]:
    """Every field that is wrong, not only the first, so a form can say them all at once."""
    problems: list[Invalid] = []
    if not name.strip():
        problems.append(Invalid("name: must not be empty"))
    elif len(name.strip()) > 120:
        problems.append(Invalid("name: at most 120 characters"))
    try:
        normalise(phone, region)
    except InvalidPhoneNumber as exc:
        problems.append(Invalid(f"phone: {exc}"))
    try:
        zone(timezone)
    except InvalidTimeZone as exc:
        problems.append(Invalid(f"timezone: {exc}"))
    if quiet_hours:
        try:
            QuietHours.parse(quiet_hours)
        except InvalidQuietHours as exc:
            problems.append(Invalid(f"quiet_hours: {exc}"))
    return problems


def enrol(
    db: Session,
    vault: PhoneVault,
    *,
    name: str,
    phone: str,
    timezone: str,
    quiet_hours: str | None,
    language: str = "en",
    region: str = "US",
    now: datetime,
) -> Participant:
    problems = enrolment_problems(
        name=name, phone=phone, timezone=timezone, quiet_hours=quiet_hours, region=region
    )
    if problems:
        raise problems[0]
    name = name.strip()
    e164 = normalise(phone, region)
    quiet = str(QuietHours.parse(quiet_hours)) if quiet_hours else None
    index = vault.blind_index(e164)
    if db.scalar(select(Participant.id).where(Participant.phone_index == index)) is not None:
        raise Conflict("phone: this number is already enrolled")
    participant = Participant(
        name=name,
        phone_ciphertext=vault.encrypt(e164),
        phone_index=index,
        timezone=timezone,
        quiet_hours=quiet,
        language=language,
        status="active",
        created_at=now,
    )
    db.add(participant)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise Conflict("phone: this number is already enrolled") from None
    return participant


def quiet_hours_of(person: Participant) -> QuietHours | None:
    """The participant's quiet hours; a stored value that no longer parses counts as none."""
    if not person.quiet_hours:
        return None
    try:
        return QuietHours.parse(person.quiet_hours)
    except InvalidQuietHours:
        return None


def get(db: Session, participant_id: int) -> Participant:
    participant = db.get(Participant, participant_id)
    if participant is None:
        raise NotFound(f"participant {participant_id} does not exist")
    return participant


_BY_INDEX = select(Participant).where(Participant.phone_index == bindparam("index"))


def find_by_phone(db: Session, vault: PhoneVault, e164: str) -> Participant | None:
    return db.scalar(_BY_INDEX, {"index": vault.blind_index(e164)})


def make_pair(db: Session, a_id: int, b_id: int, *, now: datetime) -> Pair:
    if a_id == b_id:
        raise Invalid("participant_ids: a participant cannot be paired with themselves")
    people = [get(db, a_id), get(db, b_id)]
    for person in people:
        if person.status != "active":
            raise Conflict(f"participant {person.id} is withdrawn")
        if person.active_pair_id is not None:
            raise Conflict(f"participant {person.id} is already in pair {person.active_pair_id}")
    pair = Pair(participant_a_id=a_id, participant_b_id=b_id, started_at=now, notes="")
    db.add(pair)
    db.flush()
    # conditional update: only one of two concurrent pairings can claim a participant
    result = db.execute(
        update(Participant)
        .where(
            Participant.id.in_([a_id, b_id]),
            Participant.active_pair_id.is_(None),
            Participant.status == "active",
        )
        .values(active_pair_id=pair.id)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 2:
        raise Conflict("one of these participants was paired meanwhile")
    for person in people:
        db.refresh(person)
    return pair


def end_pair(db: Session, pair: Pair, *, now: datetime) -> Pair:
    from app.models import AttentionFlag, Reminder

    if pair.ended_at is None:
        pair.ended_at = now
        pair.next_reminder_at = None
        db.execute(
            update(Participant)
            .where(Participant.active_pair_id == pair.id)
            .values(active_pair_id=None)
            .execution_options(synchronize_session="fetch")
        )
        db.execute(
            update(Reminder)
            .where(Reminder.pair_id == pair.id, Reminder.state == "pending")
            .values(state="cancelled", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        db.execute(
            update(AttentionFlag)
            .where(AttentionFlag.pair_id == pair.id, AttentionFlag.cleared_at.is_(None))
            .values(cleared_at=now, cleared_by="system", note="pair ended")
            .execution_options(synchronize_session=False)
        )
    return pair


def update_details(
    db: Session,
    person: Participant,
    *,
    name: str | None = None,
    timezone: str | None = None,
    quiet_hours: str | None = None,
    language: str | None = None,
) -> Participant:
    if person.status != "active":
        raise Conflict(f"participant {person.id} is withdrawn")
    if name is not None:
        if not name.strip():
            raise Invalid("name: must not be empty")
        person.name = name.strip()
    if timezone is not None:
        try:
            zone(timezone)
        except InvalidTimeZone as exc:
            raise Invalid(f"timezone: {exc}") from None
        person.timezone = timezone
    if quiet_hours is not None:
        if quiet_hours.strip() == "":
            person.quiet_hours = None
        else:
            try:
                person.quiet_hours = str(QuietHours.parse(quiet_hours))
            except InvalidQuietHours as exc:
                raise Invalid(f"quiet_hours: {exc}") from None
    if language is not None:
        person.language = language
    return person


def remove(db: Session, person: Participant, *, now: datetime) -> Participant:
    """Removal on request: erase the number and its blind index, end the pair, cancel reminders.

    The participant's de-identified call metadata stays, so programme figures stay true;
    the number becomes unknown when it calls, and can be enrolled again as a new person.
    """
    from app.models import Reminder

    if person.active_pair_id is not None:
        pair = db.get(Pair, person.active_pair_id)
        if pair is not None:
            end_pair(db, pair, now=now)
    db.execute(
        update(Reminder)
        .where(Reminder.participant_id == person.id, Reminder.state.in_(["pending"]))
        .values(state="cancelled", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    person.phone_ciphertext = None
    person.phone_index = None
    person.active_pair_id = None
    if person.status != "withdrawn":
        person.status = "withdrawn"
        person.withdrawn_at = now
    return person


def get_pair(db: Session, pair_id: int) -> Pair:
    pair = db.get(Pair, pair_id)
    if pair is None:
        raise NotFound(f"pair {pair_id} does not exist")
    return pair
