"""The JSON shapes the API keeps (DESIGN.md "Programmatic surfaces"); more fields are welcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ParticipantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=1, max_length=40)
    timezone: str = Field(min_length=1, max_length=64)
    quiet_hours: str | None = Field(default=None, max_length=11)
    language: str = Field(default="en", min_length=2, max_length=8)


class ParticipantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=120)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    quiet_hours: str | None = Field(default=None, max_length=11, description="'' clears them")
    language: str | None = Field(default=None, min_length=2, max_length=8)


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


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=2, max_length=2)
    notes: str = Field(default="", max_length=5000)


class PairOut(BaseModel):
    id: int
    participant_ids: list[int]
    started_at: datetime
    ended_at: datetime | None
    last_contact_at: datetime | None
    calls_this_period: int
    notes: str


class CallOut(BaseModel):
    id: int
    twilio_call_sid: str
    pair_id: int | None
    kind: Literal["peer", "reminder"]
    initiator_id: int | None
    callee_id: int | None
    started_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    outcome: str
    is_contact: bool
    notice_version: str | None


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


class AttentionClear(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000)


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    client_ip: str | None


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1000)
    role: Literal["nurse", "staff", "admin"]


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
