"""The engagement figures' JSON shape (DESIGN.md "Shapes the API keeps": engagement).

The contract's fields come first in each model; the rest are additions the contract
welcomes. Shares are 0-1 and `null` when there is nothing to divide by; months count
from pairing (month 1 = the first 30 days).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EngagementMonthOut(_Out):
    month: int = Field(description="month since pairing; 1 = the first 30 days")
    pairs: int = Field(description="pairs that have reached this month")
    calls_per_pair: float = Field(description="accepted calls (the partner pressed 1) per pair")
    contacts_per_pair: float = Field(description="contacts (talk time >= MIN_CONTACT_SECONDS) per pair")
    mean_talk_minutes: float | None = Field(description="per accepted call; null without one")
    median_talk_minutes: float | None
    pairs_finished: int = Field(description="pairs that have completed this month")
    calls: int
    contacts: int
    calls_per_participant: float = Field(description="calls per participant-month: calls / (2 x pairs)")
    contacts_per_participant: float
    reference_calls_per_pair: float | None = Field(
        description="the trials' calls per month (2.4 in month 1 falling to 0.8 by month 6); null after"
    )
    reference_talk_minutes: float | None = Field(description="the trials' minutes per call (15.6 to 6.8)")


class EngagementRemindersOut(_Out):
    placed: int = Field(description="reminder calls placed")
    answered: int = Field(description="reminder calls answered by a person (not a machine)")
    bridged: int = Field(description="reminder calls the participant turned into a call to the partner")
    answer_rate: float | None
    participants_reminded: int
    median_participant_answer_rate: float | None


class FirstContactOut(_Out):
    pairs_with_contact: int
    share_of_pairs: float | None
    median_days: float | None = Field(description="days from pairing to the first contact, median")
    days: float | None = Field(description="one pair's days to its first contact; null for a programme")


class InitiatorBalanceOut(_Out):
    pairs_assessed: int = Field(description="pairs with at least 4 calls")
    one_sided_pairs: int = Field(description="pairs where one partner started at least 80 % of the calls")
    one_sided_share: float | None
    one_sided: bool | None = Field(description="one pair's own flag; null for a programme")


class DoseTertileOut(_Out):
    tertile: int
    pairs: int
    min_calls_per_month: float
    max_calls_per_month: float
    mean_calls_per_month: float


class EngagementSideOut(_Out):
    participant_id: int
    side: Literal["a", "b"] = Field(description="a = the lower participant id")
    calls_started: int
    share_of_calls: float | None
    reminders_placed: int
    reminders_answered: int
    reminders_bridged: int
    reminder_answer_rate: float | None


class EngagementOut(_Out):
    months: list[EngagementMonthOut]
    weekly_contact_share: float | None = Field(description="finished pair-weeks with at least one contact")
    pilot_measure_share: float | None = Field(
        description="pairs with a contact in at least 2 of their first 6 weeks, of the pairs paired 6 weeks"
    )
    ever_engaged_share: float | None = Field(description="participants in at least one call (ENGAGED_WHEN)")
    never_engaged_share: float | None
    reminders: EngagementRemindersOut
    messages_per_100_participant_weeks: float | None
    as_of: datetime
    cohort: str | None = Field(
        description="the cohort asked for, or one pair's own: month of pairing, YYYY-MM in PROGRAMME_TIMEZONE"
    )
    pair_id: int | None
    engaged_when: Literal["accepted", "contact"]
    pairs: int
    participants: int
    finished_pair_weeks: int
    pair_weeks_with_contact: int
    pilot_pairs: int
    engaged_participants: int
    first_contact: FirstContactOut
    initiator_balance: InitiatorBalanceOut
    messages: int
    participant_weeks: float
    calls_per_month: float | None = Field(
        description="calls per pair-month, over pairs paired a month or more"
    )
    dose_tertiles: list[DoseTertileOut] = Field(description="pairs in thirds by calls per month")
    sides: list[EngagementSideOut] = Field(description="one pair's two participants; empty for a programme")
