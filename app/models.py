"""Database tables. Times are stored in UTC; phone numbers only as ciphertext and blind index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
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
    status: Mapped[str] = mapped_column(String(16), default="active")
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
    kind: Mapped[str] = mapped_column(String(16), default="peer")
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
    outcome: Mapped[str] = mapped_column(String(16), default="in_progress")
    end_reason: Mapped[str | None] = mapped_column(String(64))
    notice_version: Mapped[str | None] = mapped_column(String(16))
    id_tries: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str | None] = mapped_column(String(16))
    status_sequence: Mapped[int | None]
    dial_status: Mapped[str | None] = mapped_column(String(16))
    dial_seconds: Mapped[int | None]
    partner_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    partner_status: Mapped[str | None] = mapped_column(String(16))
    partner_seconds: Mapped[int | None]
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminder.id"))


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
    # pending -> placing -> calling -> answered | machine | unanswered; or cancelled,
    # superseded, failed, unknown (placement outcome not known: never re-sent blindly)
    state: Mapped[str] = mapped_column(String(16), default="pending")
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
    role: Mapped[str] = mapped_column(String(16))  # nurse | staff | admin
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


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
    """Who viewed or changed what, and when. Append-only: nothing updates or deletes it."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(64))
