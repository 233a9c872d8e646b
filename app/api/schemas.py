"""The JSON shapes the API keeps (DESIGN.md "Programmatic surfaces"); more fields are welcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr.vocab import Language

T = TypeVar("T")


class In(BaseModel):
    """A request body: unknown fields are refused, and so is a NUL character in any text, which
    PostgreSQL can neither store nor compare (it would be a 500 there and stored on SQLite)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not contain NUL characters")
        return value


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class PasswordChange(In):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(
        min_length=1, max_length=1000, description="12 to 128 characters, not a common one"
    )


class ParticipantIn(In):
    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=1, max_length=40)
    timezone: str = Field(min_length=1, max_length=64)
    quiet_hours: str | None = Field(default=None, max_length=11)
    # the one rule (ivr.vocab.Language): anything else is a 422 naming `language` and the codes
    language: Language = Language.EN


class ParticipantPatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    quiet_hours: str | None = Field(default=None, max_length=11, description="'' clears them")
    language: Language | None = None


class ParticipantOut(BaseModel):
    id: int
    name: str
    phone: str | None
    timezone: str
    quiet_hours: str | None
    language: str
    status: Literal["active", "withdrawn"]
    pair_id: int | None
    created_at: datetime
    withdrawn_at: datetime | None


class PairIn(In):
    participant_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=2, max_length=2)
    notes: str = Field(default="", max_length=5000)


class PartnerOut(BaseModel):
    id: int
    name: str | None = Field(description="null when the participant's row is gone")
    side: Literal["a", "b"] = Field(description="a: the pair's first participant_ids entry, b: the second")


class PairOut(BaseModel):
    id: int
    participant_ids: list[int]
    started_at: datetime
    ended_at: datetime | None
    last_contact_at: datetime | None
    calls_this_period: int = Field(
        description="every call started within the contact period that ends now, attempts included "
        "(kept for compatibility; the console's figure is contacts_this_period)"
    )
    notes: str
    contacts_this_period: int = Field(
        default=0,
        description="contacts accepted within the contact period that ends now: the console's "
        '"contacts this period"',
    )
    talk_seconds_this_period: int = Field(default=0, description="those contacts' talk time")
    period_start: datetime | None = Field(
        default=None, description="the contact period these figures count: from period_start to period_end"
    )
    period_end: datetime | None = None
    days_since_contact: int | None = Field(
        default=None, description="whole days since the last contact, or since pairing when none"
    )
    partners: list[PartnerOut] = Field(
        default_factory=list, description="the two partners, in participant_ids order, with their names"
    )


class CallOut(BaseModel):
    id: int
    twilio_call_sid: str
    pair_id: int | None
    kind: Literal["peer", "reminder", "outreach"]
    initiator_id: int | None
    staff_initiator: str | None = Field(default=None, description="outreach calls: the staff member")
    callee_id: int | None
    started_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    outcome: str
    is_contact: bool
    notice_version: str | None
    label: str = Field(default="", description="what happened, in words (the console's label)")


class MessageOut(BaseModel):
    id: int
    participant_id: int | None
    call_id: int | None
    received_at: datetime
    duration_seconds: int | None
    recording_sid: str
    recording_url: str = Field(description="signed-in users only; streams the recording")
    handled_at: datetime | None
    handled_by: str | None
    handled_note: str | None = None


class MessageHandle(In):
    note: str = Field(default="", max_length=2000)


class AttentionOut(BaseModel):
    id: int
    pair_id: int
    participant_ids: list[int]
    reason: str
    raised_at: datetime
    last_contact_at: datetime | None
    cleared_at: datetime | None
    cleared_by: str | None
    note: str | None


class AttentionClear(In):
    note: str = Field(default="", max_length=2000)


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    client_ip: str | None
    count: int = Field(
        description="how many times it happened: 1, except for failed sign-ins, which are coalesced "
        "into one event per address, account, reason and minute (`at` is the first of them)"
    )


class UserIn(In):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1000)
    role: Literal["nurse", "staff", "admin"]


class UserPatch(In):
    role: Literal["nurse", "staff", "admin"] | None = None
    disabled: bool | None = None


class UserOut(BaseModel):
    id: int
    email: str
    role: Literal["nurse", "staff", "admin"]
    created_at: datetime
    disabled_at: datetime | None


class WeekOut(BaseModel):
    week_start: datetime
    contacts: int
    minutes: float
    week_end: datetime | None = Field(
        default=None,
        description="programme figures: the next Monday 00:00 in PROGRAMME_TIMEZONE (the week is "
        "[week_start, week_end), both given in that zone)",
    )


class PairStatsOut(BaseModel):
    pair_id: int
    weeks: int
    weeks_with_contact: int
    share_of_weeks_with_contact: float
    contacts: int
    minutes: float
    contacts_per_week: float
    initiator_share: dict[str, float]
    by_week: list[WeekOut]


class ProgrammeStatsOut(BaseModel):
    active_pairs: int
    pairs_with_contact_this_period: int
    share_of_pairs_with_contact_this_period: float
    contacts: int
    minutes: float
    by_week: list[WeekOut]
    attention: int
    unhandled_messages: int


class MeOut(BaseModel):
    email: str
    role: Literal["nurse", "staff", "admin"]
    phone_set: bool
    phone_last2: str | None
    digest_hour: int | None = None


class MePhoneIn(In):
    phone: str = Field(max_length=40, description="your own phone; '' removes it")


class MePhoneOut(BaseModel):
    phone: str | None = Field(description="masked: the last two digits")
    phone_set: bool


class DigestIn(In):
    hour: int | None = Field(default=None, ge=0, le=23)


class CallIn(In):
    quiet_hours_reason: str | None = Field(default=None, max_length=500)


class CallStarted(BaseModel):
    call_id: int
