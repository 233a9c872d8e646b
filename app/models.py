"""Database tables. Times are stored in UTC; phone numbers only as ciphertext and blind index."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ivr.vocab import (
    AnsweredBy,
    CallKind,
    CallStatus,
    EndReason,
    Outcome,
    ParticipantStatus,
    Place,
    ReminderState,
    RoomEvent,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=enum.StrEnum)


class Vocabulary(TypeDecorator[E]):
    """A vocabulary column: plain VARCHAR in the database, the StrEnum member in Python.

    Writing a value outside the vocabulary fails at once instead of storing a typo.
    """

    impl = String
    cache_ok = True

    def __init__(self, vocabulary: type[E], length: int) -> None:
        super().__init__(length)
        self.vocabulary = vocabulary
        self.length = length

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(self.vocabulary(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.vocabulary(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Participant(Base):
    __tablename__ = "participant"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    phone_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    quiet_hours: Mapped[str | None] = mapped_column(String(11))
    language: Mapped[str] = mapped_column(String(8), default="en")
    # a ParticipantStatus; typed as str because app/services/participants.py assigns text
    status: Mapped[str] = mapped_column(String(16), default=ParticipantStatus.ACTIVE.value)
    # one column, so a participant can be in at most one active pair by construction
    active_pair_id: Mapped[int | None] = mapped_column(
        ForeignKey("pair.id", use_alter=True, name="fk_participant_active_pair_id_pair"), index=True
    )
    created_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class Pair(Base):
    __tablename__ = "pair"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_a_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    participant_b_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    last_contact_at: Mapped[datetime | None]
    # start of the next quiet period that has no reminders yet; kept up to date on every
    # contact so the sweep reads an index instead of call history
    next_reminder_at: Mapped[datetime | None] = mapped_column(index=True)
    notes: Mapped[str] = mapped_column(Text, default="")

    def partner_of(self, participant_id: int) -> int:
        return self.participant_b_id if participant_id == self.participant_a_id else self.participant_a_id


class Call(Base):
    __tablename__ = "call"
    __table_args__ = (
        Index("ix_call_pair_started", "pair_id", "started_at"),
        # who called whom lately, per pair: missed attempts and the last call of each partner
        Index("ix_call_pair_initiator_started", "pair_id", "initiator_id", "started_at"),
        # the call log, newest first, paged by (started_at, id)
        Index("ix_call_started_id", "started_at", "id"),
        # contacts per week for the whole programme, read from the index alone
        Index("ix_call_outcome_accepted", "outcome", "accepted_at", "duration_seconds"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    twilio_call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[CallKind] = mapped_column(Vocabulary(CallKind, 16), default=CallKind.PEER)
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("pair.id"))
    initiator_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id"), index=True)
    callee_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id"), index=True)
    # keyed hash of the caller ID, for the keyed-ID lockout; never the number itself
    caller_index: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    bridged_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None]
    outcome: Mapped[Outcome] = mapped_column(Vocabulary(Outcome, 16), default=Outcome.IN_PROGRESS)
    end_reason: Mapped[EndReason | None] = mapped_column(Vocabulary(EndReason, 64))
    # the treatment notice's version each party heard (the caller's; the partner's in the whisper)
    notice_version: Mapped[str | None] = mapped_column(String(16))
    partner_notice_version: Mapped[str | None] = mapped_column(String(16))
    # the language each leg hears on this call (the caller's own, or chosen by key):
    # steps Twilio is sent to by the REST API carry no `lang`, and read it here
    caller_language: Mapped[str | None] = mapped_column(String(8))
    partner_language: Mapped[str | None] = mapped_column(String(8))
    id_tries: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[CallStatus | None] = mapped_column(Vocabulary(CallStatus, 16))
    status_sequence: Mapped[int | None]
    dial_status: Mapped[CallStatus | None] = mapped_column(Vocabulary(CallStatus, 16))
    dial_seconds: Mapped[int | None]
    partner_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    partner_status: Mapped[CallStatus | None] = mapped_column(Vocabulary(CallStatus, 16))
    partner_seconds: Mapped[int | None]
    partner_ended_at: Mapped[datetime | None]
    # machine detection on the partner's leg: a machine heard nothing and counts as no answer
    partner_answered_by: Mapped[AnsweredBy | None] = mapped_column(Vocabulary(AnsweredBy, 24))
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminder.id"))
    # the conference room both legs join: an opaque name, never a number or a name
    room: Mapped[str | None] = mapped_column(String(40), unique=True)
    # seconds both partners were in the room together, from the conference callbacks
    talk_seconds: Mapped[int | None]
    caller_stepped_out: Mapped[int] = mapped_column(Integer, default=0)
    partner_stepped_out: Mapped[int] = mapped_column(Integer, default=0)
    # where each leg is, as its own webhooks said: whom to move when the other leaves
    caller_place: Mapped[Place | None] = mapped_column(Vocabulary(Place, 8))
    partner_place: Mapped[Place | None] = mapped_column(Vocabulary(Place, 8))
    # an outreach call: the staff member (email) who asked for it; no participant initiated it
    staff_initiator: Mapped[str | None] = mapped_column(String(254))


class ConferenceEvent(Base):
    """One conference callback, kept as it came: talk time is computed from all of them.

    The unique key is what makes a callback the same callback, so a repeat adds nothing;
    the order they arrive in does not matter because nothing is computed from it.
    """

    __tablename__ = "conference_event"
    __table_args__ = (
        UniqueConstraint(
            "call_id",
            "conference_sid",
            "participant_sid",
            "event",
            "at",
            name="uq_conference_event_callback",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id"), index=True)
    # Twilio's SID of this incarnation of the room: an emptied room that is joined again is new
    conference_sid: Mapped[str] = mapped_column(String(64))
    # the leg the event is about; "" for the room's own start and end
    participant_sid: Mapped[str] = mapped_column(String(64))
    event: Mapped[RoomEvent] = mapped_column(Vocabulary(RoomEvent, 24))
    at: Mapped[datetime]
    sequence_number: Mapped[int | None]
    received_at: Mapped[datetime]


class CareTeamMessage(Base):
    __tablename__ = "care_team_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("call.id"))
    recording_url: Mapped[str | None] = mapped_column(String(512))
    duration_seconds: Mapped[int | None]
    received_at: Mapped[datetime] = mapped_column(index=True)
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(254))
    # what the nurse did about it, shown in the history beside who and when
    handled_note: Mapped[str | None] = mapped_column(Text)


class KeyedIdFailure(Base):
    """A wrong home number keyed from one caller ID; enough of them lock that caller ID out."""

    __tablename__ = "keyed_id_failure"
    __table_args__ = (Index("ix_keyed_id_failure_caller_at", "caller_index", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    caller_index: Mapped[str] = mapped_column(String(64))
    call_sid: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class Reminder(Base):
    """One reminder per participant per quiet period: the unique key makes it exactly once."""

    __tablename__ = "reminder"
    __table_args__ = (
        UniqueConstraint("participant_id", "period_start", name="uq_reminder_participant_period"),
        Index("ix_reminder_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair.id"), index=True)
    period_start: Mapped[datetime]
    state: Mapped[ReminderState] = mapped_column(Vocabulary(ReminderState, 16), default=ReminderState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    call_sid: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AttentionFlag(Base):
    """A pair quiet for two periods in a row, for staff to reach out to."""

    __tablename__ = "attention_flag"
    __table_args__ = (UniqueConstraint("pair_id", "period_start", name="uq_attention_flag_pair_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair.id"), index=True)
    period_start: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200))
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(254))
    note: Mapped[str | None] = mapped_column(Text)


class StaffUser(Base):
    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # a StaffRole; app/services/staff.py orders them
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    # Raised by a password change, a reset, disabling the account and "sign out everywhere":
    # every bearer token and console session carries the epoch it was issued under, and one
    # from an older epoch is refused, so all of them end at once without a list to walk.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # the staff member's own phone, for outreach calls: encrypted like a participant's number
    # and never looked up by, so no blind index
    phone_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    # the daily digest: the hour (0-23, programme zone) it is sent at; None: not wanted
    digest_hour: Mapped[int | None]


class DigestSent(Base):
    """One row per account and programme-zone day: the unique key makes the digest go once,
    whichever process's scheduler gets there first."""

    __tablename__ = "digest_sent"
    __table_args__ = (UniqueConstraint("staff_user_id", "day", name="uq_digest_sent_staff_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in PROGRAMME_TIMEZONE
    sent_at: Mapped[datetime]


class StaffSession(Base):
    """One console sign-in, kept on the server so that it can be ended there.

    The cookie names the session; the row says whether it still counts: not signed out, not
    idle for longer than the idle timeout, not older than the absolute lifetime, and issued
    under the account's current session epoch.
    """

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the random session id the cookie carries: the table alone cannot sign anyone in
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class SignInFailure(Base):
    """A wrong password, by account and by client address; enough of them lock sign-in."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (
        Index("ix_sign_in_failure_email_at", "email", "at"),
        Index("ix_sign_in_failure_client_at", "client_ip", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class AuditEvent(Base):
    """Who viewed or changed what, and when. Append-only: nothing deletes it, and the only
    update the database allows is a coalesced failed sign-in's count growing (see
    app/services/audit.py), so an attack leaves one row per address and minute, not thousands."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    # how many times it happened: 1, except for failed sign-ins coalesced by address and minute
    count: Mapped[int] = mapped_column(Integer, default=1)


class TreatmentNotice(Base):
    """One version of the treatment notice every call says, in every supported language.

    A draft until activated; the active one is the newest `activated_at`. Activation
    keeps its own time, so which version was active when is read from the rows. Texts
    are a JSON object {language: text}: a language added later is a key, not a column.
    """

    __tablename__ = "treatment_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(16), unique=True)
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(254))
    activated_at: Mapped[datetime | None] = mapped_column(index=True)
    activated_by: Mapped[str | None] = mapped_column(String(254))


class PromptAudio(Base):
    """Recorded audio for one prompt in one language: `<Play>` instead of the voice."""

    __tablename__ = "prompt_audio"
    __table_args__ = (UniqueConstraint("prompt", "language", name="uq_prompt_audio_prompt_language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(512))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(254))
