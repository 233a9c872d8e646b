"""What every `peerline` command shares: one-line errors, the settings, the `--at` moment.

Apart from app/cli.py so that the sub-apps it registers (app/cli_export.py,
app/cli_digest.py) can use them without importing it.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, time, timedelta
from typing import NoReturn
from zoneinfo import ZoneInfo

import typer

from app.settings import ConfigError, Settings, get_settings


def fail(message: str) -> NoReturn:
    # pydantic's "Value error, " says which Python exception it caught, not what is wrong
    typer.secho(f"error: {message.replace('Value error, ', '')}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def fail_unexpected(exc: BaseException, doing: str) -> NoReturn:
    """A failure nobody planned for: one readable line (the exception's kind and the first
    line of what it says), never a traceback; the traceback goes to the debug log."""
    logging.getLogger(__name__).debug("%s failed", doing, exc_info=exc)
    fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'failed'}")


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        fail(f"configuration: {exc}")


def parse_at(at: str, zone_name: str, now: datetime | None = None) -> datetime:
    """The moment `--at` names: an ISO date and time, or `+Nd` days from now, optionally at a
    time of day (`+8dT14:00-05:00`), so a documented example never goes stale."""
    example = "like 2026-12-01T10:00 or +8dT14:00-05:00"
    zone = ZoneInfo(zone_name)
    relative = re.fullmatch(r"\+(\d{1,4})d(?:T(.+))?", at.strip())
    if relative is not None:
        later = (now or datetime.now(UTC)) + timedelta(days=int(relative[1]))
        if relative[2] is None:
            return later
        try:
            clock = time.fromisoformat(relative[2])
        except ValueError:
            fail(f"--at {at!r}: {relative[2]!r} is not a time of day {example}")
        # that day in the zone the time is given in, so "+8dT14:00" is 14:00 there
        where = clock.tzinfo or zone
        return datetime.combine(later.astimezone(where).date(), clock.replace(tzinfo=None), tzinfo=where)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at {at!r} is not a date and time {example}")
    # no offset: the programme's own zone, as staff read times in the console
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
