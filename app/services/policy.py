"""The programme's rules, read once from settings and handed to the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.settings import Settings
from ivr.quiet_hours import QuietHours
from ivr.reminders import DEFAULT_WINDOW


@dataclass(frozen=True)
class Policy:
    min_contact_seconds: int = 60
    contact_period: timedelta = timedelta(days=7)
    reminder_window: QuietHours = DEFAULT_WINDOW

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            min_contact_seconds=settings.min_contact_seconds,
            contact_period=timedelta(days=settings.contact_period_days),
            reminder_window=QuietHours.parse(settings.reminder_hours),
        )
