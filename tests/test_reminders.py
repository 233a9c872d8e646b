"""Reminder calls when a pair goes quiet: exactly once, inside each person's hours."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from fastapi import FastAPI
from twilio.base.exceptions import TwilioRestException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from app.models import AttentionFlag, Call, Pair, Participant, Reminder
from app.services import reminders, sweep
from app.settings import Settings
from app.simulator.fake_twilio import FAKE_MP3, FakeTwilio, PlacedCall
from app.simulator.telephone import Scripted, Telephone
from app.twilio import rest
from app.twilio.rest import make_twilio_client
from ivr import prompts
from ivr.flow import Urls
from ivr.vocab import CallStatus
from tests.conftest import ANA, BEA, PROGRAMME_NUMBER, PUBLIC_BASE_URL, FakeClock, Programme, ServerThread

WEEK = timedelta(days=7)


class Sweeper:
    def __init__(self, app: FastAPI, settings: Settings, clock: FakeClock, server: ServerThread) -> None:
        self.app = app
        self.clock = clock
        self.settings = settings.model_copy(update={"twilio_api_url": server.url})

    def run(self) -> sweep.SweepReport:
        ctx = self.app.state.context
        return sweep.sweep(
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


def let_ring_out(phone: Telephone, fake: FakeTwilio, seen: set[str], busy: str | None = None) -> None:
    """Every reminder call placed since last time rings out unanswered (`busy` for that number)."""
    for call in list(fake.calls):
        if call.sid not in seen:
            seen.add(call.sid)
            answer(
                phone, call, Scripted(answers=False), unanswered="busy" if call.to == busy else "no-answer"
            )


def test_a_quiet_pair_gets_a_reminder_call_to_each_partner_one_after_the_other(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    quiet_pair: tuple[int, int, int],
    programme: Programme,
    clock: FakeClock,
) -> None:
    ana_id, bea_id, _ = quiet_pair
    report = sweeper.run()

    # Ana first; Bea waits while Ana's reminder call is live
    assert (report.placed, report.deferred) == (1, 1)
    (to_ana,) = fake_twilio.calls
    assert to_ana.to == ANA
    assert to_ana.from_ == PROGRAMME_NUMBER
    assert to_ana.url == PUBLIC_BASE_URL + "/twilio/voice/reminder"
    assert to_ana.status_callback == PUBLIC_BASE_URL + "/twilio/status"
    # Twilio waits for the machine's beep, so a machine hears the message whole
    assert to_ana.machine_detection == "DetectMessageEnd"
    assert to_ana.status_callback_event == ["initiated", "ringing", "answered", "completed"]
    states = {r.participant_id: (r.state, r.attempts) for r in programme.rows(Reminder)}
    assert states == {ana_id: ("calling", 1), bea_id: ("pending", 0)}
    assert {c.kind for c in programme.rows(Call)} == {"reminder"}

    clock.advance(minutes=20)
    assert sweeper.run().placed == 0  # Ana's reminder call is still live: Bea is not rung

    answer(phone, to_ana, Scripted(answers=False))  # Ana's call did not get through
    clock.advance(minutes=20)
    assert sweeper.run().placed == 1
    assert [c.to for c in fake_twilio.calls] == [ANA, BEA]
    again = sweeper.run()
    assert again.placed == 0 and len(fake_twilio.calls) == 2


def test_a_reminder_that_leads_to_a_talk_spares_the_other_partner_theirs(
    sweeper: Sweeper,
    fake_twilio: FakeTwilio,
    phone: Telephone,
    quiet_pair: tuple[int, int, int],
    programme: Programme,
    clock: FakeClock,
) -> None:
    sweeper.run()
    (to_ana,) = fake_twilio.calls
    answer(phone, to_ana, Scripted(["1"], talk_seconds=300), Scripted(["1"]))
    states = {r.participant_id: r.state for r in programme.rows(Reminder)}
    assert states == {quiet_pair[0]: "answered", quiet_pair[1]: "cancelled"}
    clock.advance(hours=1)
    assert sweeper.run().placed == 0 and len(fake_twilio.calls) == 1


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
    # Bea is never in her allowed hours, so her reminder never holds Ana's back
    bea = programme.enrol("Bea", BEA, tz="America/New_York", quiet="00:00-23:59")
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
    seen: set[str] = set()
    for attempt in range(1, 4):
        sweeper.run()
        let_ring_out(phone, fake_twilio, seen, busy=ANA if attempt == 2 else None)
        reminder = next(r for r in programme.rows(Reminder) if r.participant_id == quiet_pair[0])
        assert reminder.attempts == attempt
        clock.advance(minutes=90)
        sweeper.run()  # too soon for Ana (Bea's turn comes in between)
        let_ring_out(phone, fake_twilio, seen)
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
    # one partner of each pair (whichever a sweep claimed first), once; the other waits
    called = [c.to for c in fake_twilio.calls]
    assert len(called) == len(set(called)) == 10
    assert all((a in called) != (b in called) for a, b in zip(numbers[::2], numbers[1::2], strict=True))
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
    assert sweeper.run().placed == 1  # Ana; Bea once Ana's call is over


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
    monkeypatch.setattr("app.twilio.rest.REQUEST_TIMEOUT_SECONDS", 0.3)
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
    assert states == ["machine", "pending"]


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
    seen: set[str] = set()
    for _ in range(7):  # Ana and Bea in turn, each three times, two hours apart
        sweeper.run()
        let_ring_out(phone, fake_twilio, seen)
        clock.advance(hours=1, minutes=1)
    assert sorted(c.to for c in fake_twilio.calls) == [ANA] * 3 + [BEA] * 3
    assert programme.rows(AttentionFlag) == []

    clock.now = start + timedelta(days=7)
    report = sweeper.run()
    assert report.flagged == 1 and report.placed == 1
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


# ---------------------------------------------------------------- lost processes and callbacks, machines

Pair3 = tuple[int, int, int]


def _reminder(programme: Programme, participant_id: int) -> Reminder:
    return next(r for r in programme.rows(Reminder) if r.participant_id == participant_id)


def test_a_reminder_left_placing_by_a_process_that_died_becomes_unknown_and_is_never_sent(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock, quiet_pair: Pair3
) -> None:
    ctx = sweeper.app.state.context
    with programme.session() as db:
        reminders.schedule(db, clock(), ctx.policy)
        db.commit()
    with programme.session() as db:
        claimed = sweep.claim_next(db, ctx.vault, clock(), ctx.policy, sweep.SweepReport())
        db.commit()  # ...and the process dies before asking Twilio
    assert claimed is not None and claimed.participant_id == quiet_pair[0]

    clock.advance(minutes=10)
    sweeper.run()
    assert _reminder(programme, quiet_pair[0]).state == "placing"  # not yet: it may still be on its way
    assert fake_twilio.calls == []  # and Bea waits while Ana's reminder may be live

    clock.advance(minutes=6)
    report = sweeper.run()
    ana = _reminder(programme, quiet_pair[0])
    assert (ana.state, report.unknown) == ("unknown", 1)
    clock.advance(minutes=10)
    sweeper.run()
    assert [c.to for c in fake_twilio.calls] == [BEA]  # Ana's is never sent again; Bea's turn
    clock.advance(hours=6)
    sweeper.run()
    assert [c.to for c in fake_twilio.calls].count(ANA) == 0


def test_a_reminder_whose_last_callback_never_came_is_asked_about_and_what_twilio_says_applied(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock, quiet_pair: Pair3
) -> None:
    sweeper.run()
    (to_ana,) = fake_twilio.calls
    clock.advance(minutes=10)
    assert sweeper.run().reconciled == 0  # too soon to ask

    fake_twilio.set_status(to_ana.sid, CallStatus.NO_ANSWER, 0)  # the callback was lost
    clock.advance(minutes=6)
    report = sweeper.run()

    assert report.reconciled == 1
    ana = _reminder(programme, quiet_pair[0])
    assert (ana.state, ana.attempts) == ("pending", 1)
    assert ana.next_attempt_at == clock() + timedelta(hours=2)  # retried as after the callback
    call = programme.call(to_ana.sid)
    assert (call.status, call.outcome) == ("no-answer", "no_answer")
    assert [c.to for c in fake_twilio.calls] == [ANA, BEA]  # Ana is not live any more: Bea's turn


def test_a_reminder_call_twilio_still_reports_live_is_left_alone(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock, quiet_pair: Pair3
) -> None:
    sweeper.run()
    (to_ana,) = fake_twilio.calls
    fake_twilio.set_status(to_ana.sid, CallStatus.IN_PROGRESS)
    clock.advance(minutes=16)
    report = sweeper.run()
    assert report.reconciled == 0
    assert _reminder(programme, quiet_pair[0]).state == "calling"
    assert len(fake_twilio.calls) == 1


def test_a_reminder_call_twilio_does_not_know_becomes_unknown(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock, quiet_pair: Pair3
) -> None:
    sweeper.run()
    fake_twilio.calls.clear()  # Twilio answers 404 for it
    clock.advance(minutes=16)
    report = sweeper.run()
    assert report.unknown == 1
    assert _reminder(programme, quiet_pair[0]).state == "unknown"


def test_an_unknown_answer_hears_no_name_and_a_key_shows_a_person_is_there(
    sweeper: Sweeper, fake_twilio: FakeTwilio, phone: Telephone, programme: Programme, quiet_pair: Pair3
) -> None:
    sweeper.run()
    (to_ana,) = fake_twilio.calls
    ana = Scripted(["1", "2"])
    answer(phone, to_ana, ana, answered_by="unknown")
    assert ana.heard[:2] == [prompts.CHECK_GREETING, prompts.REMINDER_CHECK_ASK]
    assert "Ana" not in " ".join(ana.heard[:2])
    assert prompts.REMINDER_GREETING.format(name="Ana") in ana.text  # after the key
    assert _reminder(programme, quiet_pair[0]).state == "answered"


def test_an_unknown_answer_that_presses_nothing_is_treated_as_a_machine(
    sweeper: Sweeper, fake_twilio: FakeTwilio, phone: Telephone, programme: Programme, quiet_pair: Pair3
) -> None:
    sweeper.run()
    (to_ana,) = fake_twilio.calls
    silence = Scripted()
    answer(phone, to_ana, silence, answered_by="unknown")
    assert silence.heard[-1] == prompts.REMINDER_MACHINE
    assert "Ana" not in silence.text and "partner" not in silence.text
    assert _reminder(programme, quiet_pair[0]).state == "machine"
    assert programme.call(to_ana.sid).end_reason == "answering machine"
    assert [c.kind for c in programme.rows(Call)] == ["reminder"]


# ---------------------------------------------------------------- what Twilio's REST API answered


class _Failing:
    """A client whose `calls.create` fails the way the SDK would."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @property
    def calls(self) -> _Failing:
        return self

    def create(self, **_: object) -> None:
        raise self.error


def _place(client: rest.CallPlacer, to: str = ANA) -> rest.PlaceResult:
    return rest.place_call(
        client,
        to=to,
        from_=PROGRAMME_NUMBER,
        url=PUBLIC_BASE_URL + "/twilio/voice/reminder",
        status_callback=PUBLIC_BASE_URL + "/twilio/status",
        machine_detection="Enable",
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            TwilioRestException(429, "/Calls.json", "Too Many Requests", code=20429),
            rest.RateLimited("Twilio answered 429"),
            id="429 is a rate limit for the whole account",
        ),
        pytest.param(
            TwilioRestException(503, "/Calls.json", "Unavailable"),
            rest.Unknown("Twilio answered 503"),
            id="a 5xx may have placed the call",
        ),
        pytest.param(
            TwilioRestException(400, "/Calls.json", "Invalid 'To' Phone Number", code=21211),
            rest.Rejected("Twilio refused the call (400, code 21211)"),
            id="a 4xx is a refusal that trying again will not mend",
        ),
        pytest.param(
            TwilioRestException(401, "/Calls.json", "Authenticate", code=20003),
            rest.Rejected("Twilio refused the call (401, code 20003)"),
            id="wrong credentials are a refusal",
        ),
        pytest.param(
            requests.exceptions.ConnectTimeout(),
            rest.Unreachable("could not connect to Twilio"),
            id="a connection that timed out sent nothing",
        ),
        pytest.param(
            requests.exceptions.ConnectionError(
                MaxRetryError(None, "/Calls.json", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
            ),
            rest.Unreachable("could not connect to Twilio"),
            id="a refused connection sent nothing",
        ),
        pytest.param(
            requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
            rest.Unknown("connection to Twilio broke; the call may have been placed"),
            id="a connection that broke after sending may have placed the call",
        ),
        pytest.param(
            requests.exceptions.ReadTimeout(),
            rest.Unknown("ReadTimeout while placing the call"),
            id="no answer in time may still mean a placed call",
        ),
    ],
)
def test_what_twilio_answered_is_one_type_not_exception_text(error: Exception, expected: object) -> None:
    assert _place(_Failing(error)) == expected


def test_placing_against_the_fake_gives_the_call_sid(
    settings: Settings, fake_twilio: FakeTwilio, fake_twilio_server: ServerThread
) -> None:
    client = make_twilio_client(settings.model_copy(update={"twilio_api_url": fake_twilio_server.url}))
    placed = _place(client)
    assert placed == rest.Placed(fake_twilio.calls[0].sid)
    assert fake_twilio.calls[0].status_callback_event == ["initiated", "ringing", "answered", "completed"]
    assert _place(client, to="6175550101") == rest.Rejected("Twilio refused the call (400, code 21211)")
    fake_twilio.fail_next(429)
    assert _place(client) == rest.RateLimited("Twilio answered 429")


def test_a_twilio_nobody_listens_at_is_unreachable(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = make_twilio_client(settings.model_copy(update={"twilio_api_url": closed}))
    assert _place(client) == rest.Unreachable("could not connect to Twilio")


def test_a_recording_is_fetched_with_the_accounts_credentials(
    settings: Settings, fake_twilio_server: ServerThread
) -> None:
    fake = settings.model_copy(update={"twilio_api_url": fake_twilio_server.url})
    url = rest.recording_url(fake, "RE1")
    assert (
        url
        == f"{fake_twilio_server.url}/2010-04-01/Accounts/{settings.twilio_account_sid}/Recordings/RE1.mp3"
    )
    assert rest.fetch_recording(fake, url) == rest.FetchedRecording(FAKE_MP3, "audio/mpeg")
    assert rest.fetch_recording(fake, fake_twilio_server.url + "/elsewhere/RE1.mp3") == (
        rest.RecordingUnavailable("Twilio answered 404 for the recording")
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/RE1.mp3"
    assert rest.fetch_recording(fake, closed) == rest.RecordingUnavailable(
        "could not fetch the recording from Twilio"
    )


class _Watched:
    """The SDK client, and what the database said each time a call was asked for."""

    def __init__(self, client: rest.CallPlacer, programme: Programme) -> None:
        self.client = client
        self.programme = programme
        self.seen: list[dict[str, int]] = []

    @property
    def calls(self) -> _Watched:
        return self

    def __call__(self, sid: str) -> object:
        return self.client.calls(sid)

    def create(self, **options: object) -> object:
        states: dict[str, int] = {}
        for reminder in self.programme.rows(Reminder):
            states[reminder.state] = states.get(reminder.state, 0) + 1
        self.seen.append(states)
        return self.client.calls.create(**options)


def test_a_sweep_has_one_reminder_claimed_and_not_recorded_at_a_time(
    sweeper: Sweeper, fake_twilio: FakeTwilio, programme: Programme, clock: FakeClock
) -> None:
    """The record of one call and the claim of the next share a transaction: when Twilio
    is asked for a call, that one reminder is `placing`, the ones before it are recorded."""
    clock.advance(days=-8)
    for n in range(3):
        a = programme.enrol(f"A{n}", f"+1617555{101 + 2 * n:04d}", tz="America/New_York")
        b = programme.enrol(f"B{n}", f"+1617555{102 + 2 * n:04d}", tz="America/New_York")
        programme.pair(a, b)
    clock.advance(days=8)
    ctx = sweeper.app.state.context
    watched = _Watched(make_twilio_client(sweeper.settings), programme)
    report = sweep.sweep(
        sweeper.app.state.sessionmaker,
        ctx.vault,
        watched,
        now=clock(),
        policy=ctx.policy,
        urls=Urls(PUBLIC_BASE_URL),
        programme_number=PROGRAMME_NUMBER,
    )
    # one partner of each pair now; the other waits while that call is live
    assert (report.scheduled, report.placed, report.deferred) == (6, 3, 3)
    assert [s.get("placing", 0) for s in watched.seen] == [1, 1, 1]
    assert [s.get("calling", 0) for s in watched.seen] == [0, 1, 2]
    assert len(fake_twilio.calls) == 3
    assert sorted(r.state for r in programme.rows(Reminder)) == ["calling"] * 3 + ["pending"] * 3
    assert {
        (c.kind, c.reminder_id is not None, c.initiator_id is not None) for c in programme.rows(Call)
    } == {("reminder", True, True)}


def test_a_contact_moves_the_quiet_clock_only_forward_and_cancels_only_the_reminders_before_it(
    programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    from ivr.vocab import ReminderState

    ana, _, pair_id = ana_and_bea
    policy = programme.app.state.context.policy
    later, earlier = programme.clock(), programme.clock() - timedelta(days=3)
    with programme.session() as db:
        for period_start in (
            earlier - timedelta(days=1),
            later - timedelta(days=1),
            later + timedelta(days=1),
        ):
            db.add(
                Reminder(
                    participant_id=ana,
                    pair_id=pair_id,
                    period_start=period_start,
                    state=ReminderState.PENDING,
                    attempts=0,
                    next_attempt_at=period_start,
                    created_at=earlier,
                    updated_at=earlier,
                )
            )
        db.commit()
    with programme.session() as db:
        reminders.contact_made(db, pair_id, later, policy=policy)
        db.commit()
    with programme.session() as db:
        # an earlier contact told late changes nothing
        reminders.contact_made(db, pair_id, earlier, policy=policy)
        db.commit()
    pair = programme.get(Pair, pair_id)
    assert (pair.last_contact_at, pair.next_reminder_at) == (later, later + policy.contact_period)
    with programme.session() as db:
        states = [r.state for r in db.query(Reminder).order_by(Reminder.period_start)]
    assert states == [ReminderState.CANCELLED, ReminderState.CANCELLED, ReminderState.PENDING]
