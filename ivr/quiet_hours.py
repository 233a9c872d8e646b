"""Quiet hours: a daily window, in the participant's own time zone, when the phone must not ring.

A window may cross midnight (21:00-09:00). Arithmetic is done on local wall-clock
times with zoneinfo, so DST days are handled: a window is "quiet" by what the
clock on the participant's wall says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class InvalidQuietHours(ValueError):
    pass


class InvalidTimeZone(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    """The time zone named, or InvalidTimeZone with a reason."""
    if not name or name not in known_zones():
        raise InvalidTimeZone(f"unknown time zone {name!r}; use an IANA name like America/New_York")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimeZone(f"unknown time zone {name!r}") from exc


_ZONES: frozenset[str] | None = None


def known_zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        match = _WINDOW.match(text or "")
        if not match:
            raise InvalidQuietHours(f"quiet hours {text!r} must look like 21:00-09:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise InvalidQuietHours(f"quiet hours {text!r} have a time that does not exist")
        if (h1, m1) == (h2, m2):
            raise InvalidQuietHours(f"quiet hours {text!r} start and end at the same time")
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def is_quiet(quiet: QuietHours | None, tz_name: str, now: datetime) -> bool:
    if quiet is None:
        return False
    local = now.astimezone(zone(tz_name))
    return quiet.contains(local.time().replace(tzinfo=None))


def quiet_ends_at(quiet: QuietHours, tz_name: str, now: datetime) -> datetime:
    """The next moment (UTC) the phone may ring; `now` itself when it is not quiet."""
    tz = zone(tz_name)
    if not is_quiet(quiet, tz_name, now):
        return now.astimezone(UTC)
    local = now.astimezone(tz)
    for day_offset in (0, 1):
        day = local.date() + timedelta(days=day_offset)
        candidate = datetime.combine(day, quiet.end, tzinfo=tz)
        # fold the wall time through UTC so a time skipped by DST lands on a real instant
        candidate = candidate.astimezone(UTC).astimezone(tz)
        if candidate > local:
            return candidate.astimezone(UTC)
    raise AssertionError("a quiet window always ends within a day")  # pragma: no cover
