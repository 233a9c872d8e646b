"""Enrolling participants, making pairs, and finding a participant by phone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.models import Pair, Participant
from app.services.errors import Conflict, Invalid, found
from app.services.zones import place_zone
from ivr.phone import InvalidPhoneNumber, normalise
from ivr.quiet_hours import InvalidQuietHours, InvalidTimeZone, QuietHours
from ivr.vocab import UnsupportedLanguage, language_of

# the languages prompts exist in (the participant form offers these)
NAME_LENGTH = 120  # participant.name is VARCHAR(120): longer is refused, never cut or left to fail


def name_problem(name: str) -> Invalid | None:
    if "\x00" in name:
        # PostgreSQL cannot store NUL in text; no name has one
        return Invalid("name: must not contain NUL characters")
    if not name.strip():
        return Invalid("name: must not be empty")
    if len(name.strip()) > NAME_LENGTH:
        return Invalid(f"name: at most {NAME_LENGTH} characters")
    return None


def language_problem(language: str) -> Invalid | None:
    try:
        checked_language(language)
    except Invalid as problem:
        return problem
    return None


def enrolment_problems(
    *,
    name: str,
    phone: str,
    timezone: str,
    quiet_hours: str | None,
    region: str = "US",
    language: str = "en",
) -> list[Invalid]:
    """Every field that is wrong, not only the first, so a form can say them all at once."""
    problems: list[Invalid] = []
    if (problem := name_problem(name)) is not None:
        problems.append(problem)
    try:
        normalise(phone, region)
    except InvalidPhoneNumber as exc:
        problems.append(Invalid(f"phone: {exc}"))
    try:
        place_zone(timezone)  # a real place: not EST, US/Eastern or Etc/GMT+5 (services/zones.py)
    except InvalidTimeZone as exc:
        problems.append(Invalid(f"timezone: {exc}"))
    if quiet_hours:
        try:
            QuietHours.parse(quiet_hours)
        except InvalidQuietHours as exc:
            problems.append(Invalid(f"quiet_hours: {exc}"))
    if (problem := language_problem(language)) is not None:
        problems.append(problem)
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
        name=name, phone=phone, timezone=timezone, quiet_hours=quiet_hours, region=region, language=language
    )
    if problems:
        raise problems[0]
    language = checked_language(language)
    name = name.strip()
    e164 = normalise(phone, region)
    quiet = str(QuietHours.parse(quiet_hours)) if quiet_hours else None
    index = vault.blind_index(e164)
    # during a key rotation the number may still be stored under the previous key's index
    taken = select(Participant.id).where(Participant.phone_index.in_(vault.blind_indexes(e164)))
    if db.scalar(taken) is not None:
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
    return stored_quiet_hours(person.quiet_hours)


def stored_quiet_hours(text: str | None) -> QuietHours | None:
    """Quiet hours as stored on a participant's row; a value that no longer parses counts
    as none (for statements that read the column without loading the participant)."""
    if not text:
        return None
    try:
        return QuietHours.parse(text)
    except InvalidQuietHours:
        return None


def get(db: Session, participant_id: int) -> Participant:
    return found(db.get(Participant, participant_id), f"participant {participant_id}")


# every index the number may be stored under: during a key rotation, the new and the old key's
_BY_INDEX = select(Participant).where(Participant.phone_index.in_(bindparam("indexes", expanding=True)))


def find_by_phone(db: Session, vault: PhoneVault, e164: str) -> Participant | None:
    return db.scalar(_BY_INDEX, {"indexes": vault.blind_indexes(e164)})


def make_pair(db: Session, a_id: int, b_id: int, *, now: datetime, notes: str = "") -> Pair:
    if a_id == b_id:
        raise Invalid("participant_ids: a participant cannot be paired with themselves")
    people = [get(db, a_id), get(db, b_id)]
    for person in people:
        if person.status != "active":
            raise Conflict(f"participant {person.id} is withdrawn")
        if person.active_pair_id is not None:
            raise Conflict(f"participant {person.id} is already in pair {person.active_pair_id}")
    pair = Pair(participant_a_id=a_id, participant_b_id=b_id, started_at=now, notes=notes)
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
        if (problem := name_problem(name)) is not None:
            raise problem
        person.name = name.strip()
    if timezone is not None and timezone != person.timezone:
        # a zone stored before the rule is kept on an edit that leaves it; a new one is a place
        try:
            place_zone(timezone)
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
        person.language = checked_language(language)
    return person


def checked_language(code: str) -> str:
    """The one check of a participant's language, whoever asks (API, console, CLI): only a
    language every prompt is written in, else a refusal naming the supported codes."""
    try:
        return language_of(code).value
    except UnsupportedLanguage as exc:
        raise Invalid(f"language: {exc}") from None


def remove(db: Session, vault: PhoneVault, person: Participant, *, now: datetime) -> Participant:
    """Removal on request: erase the number and everything derived from it, end the pair,
    cancel reminders.

    Erased: the ciphertext and the blind index on the participant; the caller-ID index on every
    call that carries her number's index, or that she made or received (a call she made from
    another phone carries that phone's index, which would tie her history to it); every
    keyed-ID failure under her number's index or on one of her calls. Without these, anyone
    holding SECRET_KEY could compute the index of her number and find her call history again.
    Kept: the participant row (name or alias, withdrawn, no number) and the de-identified call
    metadata (when, how long, how it ended), so programme figures stay true. Her number is then
    an unknown caller like any other, and can be enrolled again as a new person.
    """
    from app.models import Call, KeyedIdFailure, Reminder

    indexes = {person.phone_index} if person.phone_index else set()
    number = vault.decrypt(person.phone_ciphertext) if person.phone_ciphertext else None
    if number is not None:
        # the index under every key in use, besides the stored one: a rotation may be under way
        indexes.update(vault.blind_indexes(number))
    her_calls = or_(Call.initiator_id == person.id, Call.callee_id == person.id)
    if indexes:
        db.execute(
            delete(KeyedIdFailure)
            .where(KeyedIdFailure.caller_index.in_(indexes))
            .execution_options(synchronize_session=False)
        )
    db.execute(
        delete(KeyedIdFailure)
        .where(KeyedIdFailure.call_sid.in_(select(Call.twilio_call_sid).where(her_calls)))
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(Call)
        .where(or_(her_calls, Call.caller_index.in_(indexes)) if indexes else her_calls)
        .where(Call.caller_index.is_not(None))
        .values(caller_index=None)
        .execution_options(synchronize_session="fetch")
    )
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
    return found(db.get(Pair, pair_id), f"pair {pair_id}")
