"""REMINDER_TRIGGER: what restarts a pair's quiet clock, a contact (ours) or any attempt (the trials')."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi import FastAPI

from app.models import Pair, Reminder
from app.services import sweep
from app.services.policy import Policy
from app.settings import ConfigError, Settings, load_settings
from app.simulator.fake_twilio import PlacedCall
from app.simulator.telephone import HANGS_UP, Scripted, Telephone, in_process_client
from ivr import reminders as rules
from ivr.flow import Urls
from tests.conftest import ANA, BEA, PROGRAMME_NUMBER, PUBLIC_BASE_URL, FakeClock, Programme

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def use_trigger(app: FastAPI, settings: Settings, trigger: str) -> None:
    """The app's rules as they would be read from REMINDER_TRIGGER=<trigger>."""
    app.state.context.policy = Policy.from_settings(settings.model_copy(update={"reminder_trigger": trigger}))


def run_sweep(app: FastAPI, phone: Telephone, settings: Settings, clock: FakeClock) -> sweep.SweepReport:
    """One reminder sweep, its calls placed with the fake REST API the telephone plays."""
    ctx = app.state.context
    return sweep.sweep(
        app.state.sessionmaker,
        ctx.vault,
        in_process_client(phone.fake, settings.twilio_account_sid, settings.twilio_auth_token),
        now=clock(),
        policy=ctx.policy,
        urls=Urls(PUBLIC_BASE_URL),
        programme_number=PROGRAMME_NUMBER,
    )


def reminder_calls(phone: Telephone) -> list[PlacedCall]:
    """The reminder calls placed so far (the fake also keeps the partners' legs of peer calls)."""
    return [c for c in phone.fake.calls if c.url.endswith("/twilio/voice/reminder")]


def reminders_by_person(programme: Programme) -> dict[int, str]:
    return {r.participant_id: r.state for r in programme.rows(Reminder)}


@pytest.fixture
def paired_ten_days_ago(programme: Programme, clock: FakeClock) -> tuple[int, int, int, datetime]:
    """Ana (Boston) and Bea (Chicago), paired ten days before now (Tuesday 15:00 in Boston)."""
    now = clock()
    clock.now = now - 10 * DAY
    ana = programme.enrol("Ana", ANA, tz="America/New_York")
    bea = programme.enrol("Bea", BEA, tz="America/Chicago")
    pair = programme.pair(ana, bea)
    paired = clock()
    clock.now = now
    return ana, bea, pair, paired


@pytest.fixture
def only_failed_attempts(
    phone: Telephone, clock: FakeClock, paired_ten_days_ago: tuple[int, int, int, datetime]
) -> tuple[int, int, int, datetime]:
    """Day 5: Bea refuses Ana's call. Day 6: Bea calls and they talk 20 seconds (too short).
    No contact ever; the last attempt was four days ago."""
    now, paired = clock(), paired_ten_days_ago[3]
    clock.now = paired + 5 * DAY
    phone.call(ANA, Scripted(), Scripted(["h"]))
    clock.now = paired + 6 * DAY
    phone.call(BEA, Scripted(talk_seconds=20, ends=HANGS_UP), Scripted(["1"]))
    clock.now = now
    return paired_ten_days_ago


# ---------------------------------------------------------------- the setting


def test_the_trigger_is_contact_unless_reminder_trigger_says_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMINDER_TRIGGER", raising=False)
    assert Policy.from_settings(Settings()).reminder_trigger == "contact"
    monkeypatch.setenv("REMINDER_TRIGGER", "attempt")
    assert Policy.from_settings(Settings()).reminder_trigger == "attempt"


def test_an_unknown_trigger_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDER_TRIGGER", "call")
    with pytest.raises(ConfigError, match=r"^REMINDER_TRIGGER: .*'contact' or 'attempt'"):
        load_settings()


def test_with_attempts_counting_the_quiet_clock_restarts_at_the_later_of_contact_and_attempt() -> None:
    contact, attempt = datetime(2026, 11, 2, 20, 0), datetime(2026, 11, 5, 20, 0)
    assert rules.quiet_clock_reset(contact, attempt, "contact") == contact
    assert rules.quiet_clock_reset(contact, attempt, "attempt") == attempt
    assert rules.quiet_clock_reset(attempt, contact, "attempt") == attempt
    assert rules.quiet_clock_reset(None, attempt, "attempt") == attempt
    assert rules.quiet_clock_reset(None, None, "attempt") is None


# ---------------------------------------------------------------- which pairs are due


def test_a_pair_whose_only_calls_were_refused_or_too_short_is_due_when_contacts_count(
    app: FastAPI,
    settings: Settings,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    only_failed_attempts: tuple[int, int, int, datetime],
) -> None:
    ana, bea, _, paired = only_failed_attempts
    use_trigger(app, settings, "contact")

    report = run_sweep(app, phone, settings, clock)

    assert report.scheduled == 2
    periods = {r.participant_id: r.period_start for r in programme.rows(Reminder)}
    assert periods == {ana: paired + WEEK, bea: paired + WEEK}  # quiet a week after pairing
    assert [c.to for c in reminder_calls(phone)] == [ANA]  # Bea's waits while Ana's call is live


def test_the_same_pair_is_not_due_when_attempts_count_until_a_week_after_its_last_attempt(
    app: FastAPI,
    settings: Settings,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    only_failed_attempts: tuple[int, int, int, datetime],
) -> None:
    ana, bea, pair_id, paired = only_failed_attempts
    use_trigger(app, settings, "attempt")

    report = run_sweep(app, phone, settings, clock)

    assert report.scheduled == 0 and programme.rows(Reminder) == [] and reminder_calls(phone) == []
    # the pair is looked at again when a week has passed since Bea's short call
    last_attempt = paired + 6 * DAY
    assert programme.get(Pair, pair_id).next_reminder_at == last_attempt + WEEK

    clock.now = last_attempt + WEEK + timedelta(hours=1)
    assert run_sweep(app, phone, settings, clock).scheduled == 2
    periods = {r.participant_id: r.period_start for r in programme.rows(Reminder)}
    assert periods == {ana: last_attempt + WEEK, bea: last_attempt + WEEK}


def test_a_call_into_the_partners_quiet_hours_is_an_attempt_too(
    app: FastAPI,
    settings: Settings,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
) -> None:
    """Ana called at 07:00 Chicago time, inside Bea's quiet hours: Bea's phone never rang,
    but Ana tried, and under the trials' rule that restarts the clock."""
    now = clock()
    clock.now = now - 10 * DAY
    ana = programme.enrol("Ana", ANA, tz="America/New_York")
    bea = programme.enrol("Bea", BEA, tz="America/Chicago", quiet="21:00-08:00")
    programme.pair(ana, bea)
    clock.now = (now - 4 * DAY).replace(hour=13)  # 07:00 in Chicago
    record = phone.call(ANA, Scripted(), Scripted(["1"]))
    clock.now = now
    assert programme.call(record.sid).outcome == "quiet_hours"

    use_trigger(app, settings, "attempt")

    assert run_sweep(app, phone, settings, clock).scheduled == 0


def test_a_staggered_reminder_is_dropped_when_attempts_count_and_the_first_partner_rang_through(
    app: FastAPI,
    settings: Settings,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    paired_ten_days_ago: tuple[int, int, int, datetime],
) -> None:
    """Ana presses 1 on her reminder and Bea refuses: an attempt, not a contact."""
    ana, bea, _, _ = paired_ten_days_ago
    use_trigger(app, settings, "attempt")
    run_sweep(app, phone, settings, clock)
    (to_ana,) = reminder_calls(phone)
    play_reminder(phone, to_ana, Scripted(["1"]), partner=Scripted(["h"]))

    clock.now += timedelta(minutes=30)
    report = run_sweep(app, phone, settings, clock)

    assert report.placed == 0 and report.cancelled == 1
    assert reminders_by_person(programme) == {ana: "answered", bea: "cancelled"}


def test_the_staggered_reminder_still_rings_when_only_contacts_count(
    app: FastAPI,
    settings: Settings,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    paired_ten_days_ago: tuple[int, int, int, datetime],
) -> None:
    ana, bea, _, _ = paired_ten_days_ago
    use_trigger(app, settings, "contact")
    run_sweep(app, phone, settings, clock)
    (to_ana,) = reminder_calls(phone)
    play_reminder(phone, to_ana, Scripted(["1"]), partner=Scripted(["h"]))

    clock.now += timedelta(minutes=30)
    report = run_sweep(app, phone, settings, clock)

    assert report.placed == 1
    assert [c.to for c in reminder_calls(phone)] == [ANA, BEA]
    assert reminders_by_person(programme) == {ana: "answered", bea: "calling"}


def test_a_reminder_call_that_rang_no_partner_is_no_attempt(
    app: FastAPI,
    settings: Settings,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    paired_ten_days_ago: tuple[int, int, int, datetime],
) -> None:
    """Ana hears her reminder and hangs up without pressing 1: the pair attempted nothing."""
    ana, bea, _, _ = paired_ten_days_ago
    use_trigger(app, settings, "attempt")
    run_sweep(app, phone, settings, clock)
    (to_ana,) = reminder_calls(phone)
    play_reminder(phone, to_ana, Scripted(["h"]))

    clock.now += timedelta(minutes=30)
    assert run_sweep(app, phone, settings, clock).placed == 1
    assert reminders_by_person(programme) == {ana: "answered", bea: "calling"}


def play_reminder(
    phone: Telephone, call: PlacedCall, callee: Scripted, partner: Scripted | None = None
) -> None:
    phone.answer(call.sid, call.to, call.url, callee, partner, status_callback=call.status_callback)
