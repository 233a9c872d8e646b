"""`peerline reminders run --at WHEN`: one sweep as if it were that moment.

The command runs in-process with its settings from the environment, as a user's shell
gives them, against the suite's fake Calls API; the programme is made relative to the
real clock, since the command's own clock is the real one unless `--at` moves it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner, Result

from app import settings as settings_module
from app.cli import _parse_at, cli
from app.models import Call, Reminder
from app.simulator.fake_twilio import FakeTwilio
from tests.conftest import (
    ANA,
    AUTH_TOKEN,
    PROGRAMME_NUMBER,
    PUBLIC_BASE_URL,
    SECRET,
    FakeClock,
    Programme,
    ServerThread,
)

runner = CliRunner()
NEW_YORK = ZoneInfo("America/New_York")
EASTERN_WINTER = timezone(timedelta(hours=-5))
# a real-looking account: the command then serves no fake of its own and rings no terminal
REAL_ACCOUNT = "AC" + "1" * 32


@pytest.fixture
def clock() -> FakeClock:
    """The programme is made twenty days before the real now, on a whole minute."""
    return FakeClock(datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=20))


@pytest.fixture
def sweep(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    fake_twilio_server: ServerThread,
    fake_twilio: FakeTwilio,
) -> Iterator[Callable[..., Result]]:
    """`peerline reminders run ARGS`, with the programme's database and the suite's fake Twilio."""
    monkeypatch.chdir(tmp_path)  # no .env of anyone's is read
    env = {
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "TWILIO_ACCOUNT_SID": REAL_ACCOUNT,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": PROGRAMME_NUMBER,
        "TWILIO_API_URL": fake_twilio_server.url,
        "SECRET_KEY": SECRET,
        "PEERLINE_DEV_SECRETS": str(tmp_path / "secrets.json"),
        "PROGRAMME_TIMEZONE": "America/New_York",
        "SCHEDULER_ENABLED": "false",
    }

    def run(*args: str, **overrides: str) -> Result:
        for name, value in {**env, **overrides}.items():
            monkeypatch.setenv(name, value)
        settings_module.get_settings.cache_clear()
        return runner.invoke(cli, ["reminders", "run", *args])

    yield run
    settings_module.get_settings.cache_clear()


@pytest.fixture
def quiet_since_twenty_days(programme: Programme) -> int:
    """Ana and Bea, paired twenty days ago and never in touch since: quiet, by the real clock."""
    ana = programme.enrol("Ana", ANA)
    bea = programme.enrol("Bea", "617-555-0102")
    return programme.pair(ana, bea)


def at_new_york(moment: datetime, hour: int) -> datetime:
    """That day in New York, at `hour` o'clock there."""
    day = moment.astimezone(NEW_YORK).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK)


def test_a_moment_before_the_pair_was_quiet_places_nothing(
    sweep: Callable[..., Result],
    programme: Programme,
    clock: FakeClock,
    quiet_since_twenty_days: int,
    fake_twilio: FakeTwilio,
) -> None:
    # five days after pairing the pair is not quiet yet, though it is by the real clock
    five_days_in = at_new_york(clock.now + timedelta(days=5), 14)
    result = sweep("--at", five_days_in.isoformat())
    assert result.exit_code == 0, result.output
    assert f"reminder sweep at {five_days_in.isoformat()}: scheduled 0," in result.stdout
    assert programme.rows(Reminder) == [] and fake_twilio.calls == []


def test_a_moment_in_the_past_decides_and_places_as_if_it_were_then(
    sweep: Callable[..., Result],
    programme: Programme,
    clock: FakeClock,
    quiet_since_twenty_days: int,
    fake_twilio: FakeTwilio,
) -> None:
    nine_days_in = at_new_york(clock.now + timedelta(days=9), 14)
    result = sweep("--at", nine_days_in.isoformat())
    assert result.exit_code == 0, result.output
    assert "placed 1," in result.stdout
    (placed,) = fake_twilio.calls
    assert placed.to == ANA and placed.url.endswith("/twilio/voice/reminder")
    # the call log and the reminder say it was placed then, not now
    (call,) = programme.rows(Call)
    assert call.kind == "reminder" and call.started_at.replace(tzinfo=UTC) == nine_days_in
    ana_first = min(programme.rows(Reminder), key=lambda r: r.participant_id)
    assert ana_first.updated_at.replace(tzinfo=UTC) == nine_days_in


def test_a_moment_in_the_future_sweeps_a_pair_that_is_not_quiet_yet(
    sweep: Callable[..., Result], programme: Programme, fake_twilio: FakeTwilio
) -> None:
    # paired just now: nothing is due by the real clock, but eight days ahead it is quiet
    programme.clock.now = datetime.now(UTC).replace(second=0, microsecond=0)
    programme.pair(programme.enrol("Ana", ANA), programme.enrol("Bea", "617-555-0102"))
    today = sweep(REMINDER_HOURS="00:00-23:59")
    assert today.exit_code == 0 and "scheduled 0," in today.stdout, today.output
    eight_days_on = {(datetime.now(UTC) + timedelta(days=8)).astimezone(EASTERN_WINTER).date()}
    later = sweep("--at", "+8dT14:00-05:00")
    eight_days_on.add((datetime.now(UTC) + timedelta(days=8)).astimezone(EASTERN_WINTER).date())
    assert later.exit_code == 0, later.output
    assert "placed 1," in later.stdout
    (call,) = programme.rows(Call)
    placed_at = call.started_at.astimezone(EASTERN_WINTER)
    assert placed_at.date() in eight_days_on and (placed_at.hour, placed_at.minute) == (14, 0)


def test_reminder_hours_are_judged_at_that_moment_in_the_participants_zone(
    sweep: Callable[..., Result],
    programme: Programme,
    clock: FakeClock,
    quiet_since_twenty_days: int,
    fake_twilio: FakeTwilio,
) -> None:
    # 03:00 in New York: outside Ana's hours (10:00-19:00), however late it is in UTC
    small_hours = at_new_york(clock.now + timedelta(days=9), 3)
    result = sweep("--at", small_hours.isoformat())
    assert result.exit_code == 0, result.output
    assert "placed 0," in result.stdout and fake_twilio.calls == []


def test_a_moment_without_an_offset_is_in_the_programmes_zone() -> None:
    moment = _parse_at("2026-12-01T10:00", "America/New_York")
    assert moment == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert _parse_at("2026-12-01T10:00-08:00", "America/New_York") == datetime(2026, 12, 1, 18, tzinfo=UTC)


def test_days_from_now_keep_a_readme_example_from_going_stale() -> None:
    now = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 17:30 in New York
    assert _parse_at("+8d", "UTC", now=now) == now + timedelta(days=8)
    assert _parse_at("+8dT14:00-05:00", "UTC", now=now) == datetime(2026, 12, 1, 19, 0, tzinfo=UTC)
    # no offset: that day and hour in the programme's zone
    assert _parse_at("+1dT09:30", "America/New_York", now=now) == datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("when", ["tomorrow", "2026-13-01T10:00", "+8dT25:00", "+d", ""])
def test_a_moment_that_cannot_be_read_is_one_line_and_exit_2(
    sweep: Callable[..., Result], when: str, fake_twilio: FakeTwilio
) -> None:
    result = sweep("--at", when)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: --at {when!r}") and "2026-12-01T10:00" in line
    assert "Traceback" not in result.output and fake_twilio.calls == []


def test_a_twilio_that_cannot_be_reached_is_unreachable_and_the_run_fails(
    sweep: Callable[..., Result], clock: FakeClock, quiet_since_twenty_days: int
) -> None:
    with socket.socket() as s:  # a loopback port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = sweep("--at", at_new_york(clock.now + timedelta(days=9), 14).isoformat(), TWILIO_API_URL=nowhere)
    assert result.exit_code == 1, result.output
    assert "placed 0," in result.stdout and "rate-limited 0, unreachable 1," in result.stdout
    assert result.stderr.strip() == f"error: Twilio could not be reached at {nowhere}; no reminder went out"
    assert "Traceback" not in result.output
