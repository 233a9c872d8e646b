"""The programme's rules, read once from settings and handed to the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.settings import Settings
from ivr.quiet_hours import QuietHours, is_quiet
from ivr.reminders import DEFAULT_WINDOW, ReminderTrigger


@dataclass(frozen=True)
class Policy:
    min_contact_seconds: int = 60
    contact_period: timedelta = timedelta(days=7)
    reminder_window: QuietHours = DEFAULT_WINDOW
    care_team_line: str | None = None
    care_team_hours: QuietHours | None = None
    programme_timezone: str = "UTC"
    reminder_trigger: ReminderTrigger = "contact"

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            min_contact_seconds=settings.min_contact_seconds,
            contact_period=timedelta(days=settings.contact_period_days),
            reminder_window=QuietHours.parse(settings.reminder_hours),
            care_team_line=settings.care_team_line,
            care_team_hours=QuietHours.parse(settings.care_team_hours) if settings.care_team_hours else None,
            programme_timezone=settings.programme_timezone,
            reminder_trigger=settings.reminder_trigger,
        )

    def nurse_line(self, now: datetime) -> str | None:
        """The care-team line while it is staffed, else None (then no `0` is offered)."""
        if self.care_team_line is None:
            return None
        if self.care_team_hours is None:
            return self.care_team_line
        # a window of hours has the same shape as quiet hours: "inside" is what matters
        staffed = is_quiet(self.care_team_hours, self.programme_timezone, now)
        return self.care_team_line if staffed else None
