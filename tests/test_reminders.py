"""Reminder calls when a pair goes quiet: exactly once, inside each person's hours."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from app.fake_twilio import FakeTwilio, PlacedCall
from app.models import AttentionFlag, Call, Pair, Participant, Reminder
from app.services import reminders
from app.settings import Settings
from app.telephone import Scripted, Telephone
from app.twilio_client import make_twilio_client
from ivr import prompts
from ivr.flow import Urls
from tests.conftest import ANA, BEA, PROGRAMME_NUMBER, PUBLIC_BASE_URL, FakeClock, Programme, ServerThread

WEEK = timedelta(days=7)


class Sweeper:
    def __init__(self, app: FastAPI, settings: Settings, clock: FakeClock, server: ServerThread) -> None:
        self.app = app
        self.clock = clock
        self.settings = settings.model_copy(update={"twilio_api_url": server.url})

    def run(self) -> reminders.SweepReport:
        ctx = self.app.state.context
        return reminders.sweep(
            self.app.state.sessionmaker,
            ctx.vault,
            make_twilio_client(self.settings),
            now=self.clock(),
            policy=ctx.policy,
            urls=Urls(PUBLIC_BASE_URL),
            programme_number=PROGRAMME_NUMBER,
        )


@pytest.fixture
def sweeper(app: FastAPI, settings: Settings, clock: FakeClock, fake_twilio_server: ServerThread) -> Sweeper:
    return Sweeper(app, settings, clock, fake_twilio_server)


@pytest.fixture
def quiet_pair(programme: Programme, clock: FakeClock) -> tuple[int, int, int]:
    """Ana (Boston) and Bea (Chicago), paired 8 days ago, never talked. Now: Tue 15:00 Boston."""
    clock.advance(days=-8)
    ana = programme.enrol("Ana", ANA, tz="America/New_York")
    bea = programme.enrol("Bea", BEA, tz="America/Chicago")
    pair = programme.pair(ana, bea)
    clock.advance(days=8)
    return ana, bea, pair


def answer(
    phone: Telephone, call: PlacedCall, callee: Scripted, partner: Scripted | None = None, **kw: str
) -> None:
    phone.answer(call.sid, call.to, call.url, callee, partner, status_callback=call.status_callback, **kw)


def test_a_quiet_pair_gets_one_reminder_call_to_each_partner(
    sweeper: Sweeper, fake_twilio: FakeTwilio, quiet_pair: tuple[int, int, int], programme: Programme
) -> None:
    report = sweeper.run()

    assert report.placed == 2
    assert sorted(c.to for c in fake_twilio.calls) == [ANA, BEA]
    for call in fake_twilio.calls:
        assert call.from_ == PROGRAMME_NUMBER
        assert call.url == PUBLIC_BASE_URL + "/twilio/voice/reminder"
        assert call.status_callback == PUBLIC_BASE_URL + "/twilio/status"
        assert call.machine_detection == "Enable"
        assert call.status_callback_event == ["initiated", "ringing", "answered", "completed"]
    rows = programme.rows(Reminder)
    assert {(r.state, r.attempts) for r in rows} == {("calling", 1)}
    assert {r.call_sid for r in rows} == {c.sid for c in fake_twilio.calls}
    assert {c.kind for c in programme.rows(Call)} == {"reminder"}

    again = sweeper.run()
    assert again.placed == 0 and len(fake_twilio.calls) == 2


def test_a_pair_with_a_recent_contact_gets_no_reminder(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    quiet_pair: tuple[int, int, int],
) -> None:
    clock.advance(days=-2)
    phone.call(ANA, Scripted(talk_seconds=300), Scripted(["1"]))
    clock.advance(days=2)
    assert sweeper.run().placed == 0
    assert fake_twilio.calls == []


def test_a_pair_made_less_than_a_period_ago_is_not_quiet(
    sweeper: Sweeper, fake_twilio: FakeTwilio, ana_and_bea: tuple[int, int, int]
) -> None:
    assert sweeper.run().placed == 0


@pytest.mark.parametrize(
    ("tz", "quiet", "utc_now", "expected_ring"),
    [
        # 22:00 in Boston: quiet until 09:00, then the 10:00 window opens
        ("America/New_York", "21:00-09:00", datetime(2026, 11, 18, 3, 0), datetime(2026, 11, 18, 15, 0)),
        # Kiritimati (UTC+14): 03:00 UTC is 17:00 there, but lunch-time quiet hours 16:00-18:00
        ("Pacific/Kiritimati", "16:00-18:00", datetime(2026, 11, 18, 3, 0), datetime(2026, 11, 18, 4, 0)),
        # Pago Pago (UTC-11), across the date line: 08:00 UTC is 21:00 the day before
        ("Pacific/Pago_Pago", None, datetime(2026, 11, 18, 8, 0), datetime(2026, 11, 18, 21, 0)),
        # New York's DST ends on 1 November 2026: 10:00 that morning is 15:00 UTC, not 14:00
        ("America/New_York", None, datetime(2026, 11, 1, 5, 0), datetime(2026, 11, 1, 15, 0)),
    ],
)
def test_a_callee_outside_their_hours_is_rung_at_the_next_allowed_time(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    programme: Programme,
    clock: FakeClock,
    tz: str,
    quiet: str | None,
    utc_now: datetime,
    expected_ring: datetime,
) -> None:
    clock.now = utc_now.replace(tzinfo=UTC) - timedelta(days=8)
    ana = programme.enrol("Ana", ANA, tz=tz, quiet=quiet)
    bea = programme.enrol("Bea", BEA, tz="America/New_York")
    programme.pair(ana, bea)
    clock.now = utc_now.replace(tzinfo=UTC)

    sweeper.run()
    ana_reminder = next(r for r in programme.rows(Reminder) if r.participant_id == ana)
    assert ana_reminder.state == "pending"
    assert ana_reminder.next_attempt_at == expected_ring.replace(tzinfo=UTC)
    assert ANA not in [c.to for c in fake_twilio.calls]

    clock.now = expected_ring.replace(tzinfo=UTC)
    sweeper.run()
    assert [c.to for c in fake_twilio.calls].count(ANA) == 1


def test_unanswered_reminders_are_retried_two_hours_apart_then_given_up(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    quiet_pair: tuple[int, int, int],
) -> None:
    clock.now = clock.now.replace(hour=15, minute=30)  # 10:30 in Boston: three tries fit in the day
    for attempt in range(1, 4):
        sweeper.run()
        call = next(c for c in reversed(fake_twilio.calls) if c.to == ANA)
        answer(phone, call, Scripted(answers=False), unanswered="busy" if attempt == 2 else "no-answer")
        reminder = next(r for r in programme.rows(Reminder) if r.participant_id == quiet_pair[0])
        assert reminder.attempts == attempt
        clock.advance(minutes=90)
        sweeper.run()  # too soon: nothing new
        assert [c.to for c in fake_twilio.calls].count(ANA) == attempt
        clock.advance(minutes=31)
    assert reminder.state == "unanswered"
    sweeper.run()
    assert [c.to for c in fake_twilio.calls].count(ANA) == 3
    assert {c.outcome for c in programme.rows(Call) if c.initiator_id == quiet_pair[0]} == {
        "no_answer",
        "busy",
    }


def test_a_contact_mid_period_cancels_the_reminders_still_waiting(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
) -> None:
    clock.now = datetime(2026, 11, 18, 3, 0, tzinfo=UTC) - timedelta(days=8)  # evening: deferred
    ana = programme.enrol("Ana", ANA, tz="America/New_York", quiet="21:00-09:00")
    bea = programme.enrol("Bea", BEA, tz="America/New_York", quiet="21:00-09:00")
    programme.pair(ana, bea)
    clock.now += timedelta(days=8)
    sweeper.run()
    assert {r.state for r in programme.rows(Reminder)} == {"pending"}

    clock.now = datetime(2026, 11, 18, 13, 0, tzinfo=UTC)  # 08:00: Ana calls anyway... Bea is quiet
    clock.now = datetime(2026, 11, 18, 14, 30, tzinfo=UTC)  # 09:30: allowed to call, not yet reminded
    phone.call(ANA, Scripted(talk_seconds=400), Scripted(["1"]))
    assert {r.state for r in programme.rows(Reminder)} == {"cancelled"}

    clock.now = datetime(2026, 11, 18, 16, 0, tzinfo=UTC)
    assert sweeper.run().placed == 0
    assert fake_twilio.calls == []


def test_two_sweeps_at_once_place_each_reminder_once(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock
) -> None:
    clock.advance(days=-8)
    numbers = [f"+1617555{n:04d}" for n in range(110, 130)]
    ids = [programme.enrol(f"P{i}", n) for i, n in enumerate(numbers)]
    for a, b in zip(ids[::2], ids[1::2], strict=True):
        programme.pair(a, b)
    clock.advance(days=8)

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            sweeper.run()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(c.to for c in fake_twilio.calls) == sorted(numbers)
    assert len(programme.rows(Reminder)) == 20


def test_a_rate_limited_placement_waits_and_is_not_counted(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    programme: Programme,
    clock: FakeClock,
    quiet_pair: tuple[int, int, int],
) -> None:
    fake_twilio.fail_next(429)
    report = sweeper.run()
    assert report.rate_limited == 1 and report.placed == 0  # the sweep backs off at once
    assert {(r.state, r.attempts) for r in programme.rows(Reminder)} == {("pending", 0)}
    sweeper.run()
    assert fake_twilio.calls == []  # still backing off
    clock.advance(minutes=3)
    assert sweeper.run().placed == 2


@pytest.mark.parametrize("failure", [500, 503])
def test_a_placement_with_an_unknown_outcome_is_never_sent_again(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    programme: Programme,
    clock: FakeClock,
    quiet_pair: tuple[int, int, int],
    failure: int,
) -> None:
    fake_twilio.fail_next(failure)
    report = sweeper.run()
    assert report.unknown == 1 and report.placed == 1
    clock.advance(hours=5)
    sweeper.run()
    assert len(fake_twilio.calls) == 1
    assert sorted(r.state for r in programme.rows(Reminder)) == ["calling", "unknown"]


def test_a_timed_out_placement_is_marked_unknown(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    programme: Programme,
    quiet_pair: tuple[int, int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.twilio_client.REQUEST_TIMEOUT_SECONDS", 0.3)
    fake_twilio.hang_next(1.0)
    report = sweeper.run()
    assert report.unknown == 1
    assert "unknown" in [r.state for r in programme.rows(Reminder)]


def test_an_answering_machine_hears_a_message_that_names_no_one(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    programme: Programme,
    quiet_pair: tuple[int, int, int],
) -> None:
    sweeper.run()
    machine = Scripted()
    answer(phone, fake_twilio.calls[0], machine, answered_by="machine_end_beep")
    assert machine.heard == [prompts.REMINDER_MACHINE]
    assert "Ana" not in machine.text and "Bea" not in machine.text
    states = sorted(r.state for r in programme.rows(Reminder))
    assert states == ["calling", "machine"]


def test_pressing_1_on_a_reminder_bridges_the_partners_as_a_reminder_call(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    programme: Programme,
    quiet_pair: tuple[int, int, int],
) -> None:
    ana_id, bea_id, pair_id = quiet_pair
    sweeper.run()
    call_to_ana = next(c for c in fake_twilio.calls if c.to == ANA)
    ana, bea = Scripted(["1"], talk_seconds=240), Scripted(["1"])

    answer(phone, call_to_ana, ana, bea)

    assert prompts.REMINDER in ana.text and prompts.NOTICE in ana.text
    assert prompts.WHISPER in bea.text
    row = programme.call(call_to_ana.sid)
    assert (row.kind, row.initiator_id, row.callee_id, row.outcome) == ("reminder", ana_id, bea_id, "contact")
    assert programme.get(Pair, pair_id).last_contact_at == row.accepted_at
    states = {r.participant_id: r.state for r in programme.rows(Reminder)}
    assert states[ana_id] == "answered"


def test_a_pair_quiet_two_periods_in_a_row_goes_on_the_attention_list(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    programme: Programme,
    clock: FakeClock,
    quiet_pair: tuple[int, int, int],
) -> None:
    start = clock.now
    clock.now = start.replace(hour=16, minute=30)  # 11:30 in Boston, 10:30 in Chicago
    for _ in range(3):
        sweeper.run()
        for call in fake_twilio.calls[-2:]:
            answer(phone, call, Scripted(answers=False))
        clock.advance(hours=2, minutes=1)
    assert programme.rows(AttentionFlag) == []

    clock.now = start + timedelta(days=7)
    report = sweeper.run()
    assert report.flagged == 1 and report.placed == 2
    (flag,) = programme.rows(AttentionFlag)
    assert flag.pair_id == quiet_pair[2]
    assert flag.reason == "no contact for 15 days; 6 reminder calls unanswered"

    clock.advance(days=7)
    sweeper.run()
    assert len(programme.rows(AttentionFlag)) == 1  # still open: not flagged twice


def test_withdrawn_participants_and_ended_pairs_are_never_called(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock
) -> None:
    clock.advance(days=-8)
    ana, bea = programme.enrol("Ana", ANA), programme.enrol("Bea", BEA)
    cal, dee = programme.enrol("Cal", "+16175550103"), programme.enrol("Dee", "+16175550104")
    programme.pair(ana, bea)
    ended = programme.pair(cal, dee)
    programme.end_pair(ended)
    clock.advance(days=8)
    with programme.session() as s:
        person = s.get(Participant, bea)
        assert person is not None
        person.status, person.phone_ciphertext, person.phone_index = "withdrawn", None, None
        s.commit()
    sweeper.run()
    assert [c.to for c in fake_twilio.calls] == [ANA]
