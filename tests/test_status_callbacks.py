"""Status and conference callbacks repeat and arrive out of order; the call row only moves forward."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.models import Call, ConferenceEvent, Pair
from app.simulator.telephone import Scripted, Telephone
from tests.conftest import ANA, FakeClock, Programme

Pairing = tuple[int, int, int]
T0 = datetime(2026, 11, 17, 20, 0, tzinfo=UTC)


def stamp(seconds: int) -> str:
    return format_datetime(T0 + timedelta(seconds=seconds))


def _start(phone: Telephone, programme: Programme, sid: str) -> tuple[str, str]:
    """Ana's call reaches the room; the service places Bea's leg. Returns (room, Bea's leg)."""
    phone.post("/twilio/voice", {"CallSid": sid, "From": ANA, "CallStatus": "ringing"})
    call = programme.call(sid)
    assert call.room is not None
    (placed,) = [c for c in phone.fake.calls if c.url.endswith(call.room)]
    return call.room, placed.sid


def _bridged_call(phone: Telephone, programme: Programme, sid: str) -> list[tuple[str, dict[str, str]]]:
    """Every callback of a call where Bea accepts and they talk 300 s, after the whisper."""
    room, child = _start(phone, programme, sid)
    leg = {"CallSid": child}
    status = f"/twilio/status?room={room}"

    def event(
        kind: str, seconds: int, seq: int, who: str | None = None, conference: str = "CF1"
    ) -> dict[str, str]:
        form = {
            "ConferenceSid": conference,
            "FriendlyName": room,
            "StatusCallbackEvent": kind,
            "SequenceNumber": str(seq),
            "Timestamp": stamp(seconds),
        }
        return {**form, "CallSid": who} if who else form

    phone.post(f"/twilio/voice/whisper?room={room}", {**leg, "CallStatus": "in-progress"})
    phone.post(f"/twilio/voice/whisper-answer?room={room}", {**leg, "Digits": "1"})
    return [
        (status, {**leg, "CallStatus": "ringing", "SequenceNumber": "1", "Timestamp": stamp(2)}),
        (status, {**leg, "CallStatus": "in-progress", "SequenceNumber": "2", "Timestamp": stamp(6)}),
        ("/twilio/conference", event("participant-join", 5, 1, sid)),
        ("/twilio/conference", event("participant-join", 30, 2, child)),
        ("/twilio/conference", event("conference-start", 30, 3)),
        ("/twilio/conference", event("participant-leave", 330, 4, child)),
        (
            status,
            {
                **leg,
                "CallStatus": "completed",
                "CallDuration": "324",
                "SequenceNumber": "3",
                "Timestamp": stamp(330),
            },
        ),
        ("/twilio/conference", event("participant-leave", 345, 5, sid)),
        ("/twilio/conference", event("conference-end", 345, 6)),
        (
            "/twilio/status",
            {"CallSid": sid, "CallStatus": "in-progress", "SequenceNumber": "1", "Timestamp": stamp(1)},
        ),
        (
            "/twilio/status",
            {
                "CallSid": sid,
                "CallStatus": "completed",
                "CallDuration": "346",
                "SequenceNumber": "2",
                "Timestamp": stamp(346),
            },
        ),
    ]


def _snapshot(call: Call) -> tuple[object, ...]:
    return (
        call.outcome,
        call.duration_seconds,
        call.talk_seconds,
        call.status,
        call.partner_status,
        call.accepted_at is not None,
        call.ended_at,
        call.partner_ended_at,
    )


FINAL = (
    "contact",
    300,
    300,
    "completed",
    "completed",
    True,
    T0 + timedelta(seconds=346),
    T0 + timedelta(seconds=330),
)


def test_repeated_callbacks_change_nothing_the_second_time(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    events = _bridged_call(phone, programme, "CArepeat")
    for path, form in events:
        phone.post(path, form)
    first = _snapshot(programme.call("CArepeat"))
    for path, form in events + events:
        phone.post(path, form)
    assert _snapshot(programme.call("CArepeat")) == first == FINAL
    assert len(programme.rows(Call)) == 1
    assert len(programme.rows(ConferenceEvent)) == 6  # kept once each


@pytest.mark.parametrize("seed", range(6))
def test_callbacks_in_any_order_give_the_same_call(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, seed: int
) -> None:
    sid = f"CAorder{seed}"
    events = _bridged_call(phone, programme, sid)
    shuffled = events + random.Random(seed).sample(events, k=4)
    random.Random(seed).shuffle(shuffled)
    for path, form in shuffled:
        phone.post(path, form)
    assert _snapshot(programme.call(sid)) == FINAL
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at == programme.call(sid).accepted_at


def test_every_order_of_the_room_callbacks_gives_the_same_talk_time(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    events = _bridged_call(phone, programme, "CAevery")
    room = [e for e in events if e[0] == "/twilio/conference"]
    rest = [e for e in events if e[0] != "/twilio/conference"]
    for path, form in rest:
        phone.post(path, form)
    for order in itertools.islice(itertools.permutations(room), 0, 720, 97):
        for path, form in order:
            phone.post(path, form)
        assert programme.call("CAevery").talk_seconds == 300


def test_a_late_ringing_callback_does_not_reopen_a_finished_call(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, clock: FakeClock
) -> None:
    record = phone.call(ANA, Scripted(talk_seconds=120), Scripted(["1"]))
    ended = programme.call(record.sid).ended_at
    clock.advance(minutes=3)
    phone.post("/twilio/status", {"CallSid": record.sid, "CallStatus": "ringing", "SequenceNumber": "0"})
    phone.post("/twilio/status", {"CallSid": record.sid, "CallStatus": "in-progress", "SequenceNumber": "1"})
    call = programme.call(record.sid)
    assert (call.status, call.ended_at, call.outcome) == ("completed", ended, "contact")


def test_a_contact_is_counted_once_for_the_pair(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, clock: FakeClock
) -> None:
    record = phone.call(ANA, Scripted(talk_seconds=120), Scripted(["1"]))
    contact_at = programme.get(Pair, ana_and_bea[2]).last_contact_at
    clock.advance(days=1)
    for url, form in record.callbacks:
        phone.post(url, form)
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at == contact_at
    assert programme.call(record.sid).talk_seconds == 120


def test_twilio_reporting_completed_for_a_refused_partner_is_not_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    room, child = _start(phone, programme, "CArefused")
    phone.post(f"/twilio/voice/whisper?room={room}", {"CallSid": child})
    phone.post(f"/twilio/voice/whisper-answer?room={room}", {"CallSid": child, "Digits": "3"})
    phone.post(f"/twilio/voice/whisper-answer?room={room}&again=1", {"CallSid": child, "Digits": "3"})
    phone.post(
        f"/twilio/status?room={room}", {"CallSid": child, "CallStatus": "completed", "CallDuration": "40"}
    )
    call = programme.call("CArefused")
    assert (call.outcome, call.duration_seconds, call.accepted_at) == ("declined", 0, None)


def test_a_callback_for_a_leg_that_is_not_this_rooms_changes_nothing(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    room, child = _start(phone, programme, "CAmine")
    phone.post(f"/twilio/status?room={room}", {"CallSid": "CAsomeoneelse", "CallStatus": "busy"})
    phone.post("/twilio/status?room=room-nosuchroom", {"CallSid": child, "CallStatus": "busy"})
    phone.post(
        "/twilio/conference", {"FriendlyName": "room-nosuchroom", "StatusCallbackEvent": "participant-join"}
    )
    call = programme.call("CAmine")
    assert (call.partner_call_sid, call.partner_status, call.outcome) == (child, "queued", "in_progress")
    assert len(programme.rows(Call)) == 1 and programme.rows(ConferenceEvent) == []


def test_a_caller_who_hangs_up_before_the_bridge_is_not_a_missed_attempt(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    phone.post("/twilio/voice", {"CallSid": "CAquit", "From": "anonymous"})
    phone.post("/twilio/status", {"CallSid": "CAquit", "CallStatus": "completed", "CallDuration": "9"})
    assert programme.call("CAquit").outcome == "failed"


def test_a_call_that_was_never_bridged_moves_forward_only_and_is_answered_once(
    phone: Telephone, programme: Programme
) -> None:
    """Progress callbacks of a call's own leg (one UPDATE each, calls._progressed): a first
    sight makes the row, a repeat or a late one changes nothing, the first answer stays."""
    sid = "CAprogress"

    def send(status: str, seq: int, seconds: int) -> None:
        form = {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(seq), "Timestamp": stamp(seconds)}
        phone.post("/twilio/status", form)

    send("ringing", 1, 1)  # first sight: the row is made
    assert (programme.call(sid).status, programme.call(sid).answered_at) == ("ringing", None)
    send("in-progress", 2, 10)
    send("in-progress", 2, 10)  # a repeat
    send("answered", 3, 20)  # the same rank later: the first answer stands
    send("initiated", 0, 0)  # late
    call = programme.call(sid)
    assert (call.status, call.status_sequence, call.answered_at) == (
        "in-progress",
        2,
        T0 + timedelta(seconds=10),
    )
    send("completed", 4, 40)
    send("ringing", 1, 1)
    call = programme.call(sid)
    assert (call.status, call.ended_at, call.outcome) == ("completed", T0 + timedelta(seconds=40), "failed")
    assert len(programme.rows(Call)) == 1


def test_the_partners_leg_moves_forward_only_and_a_leg_not_of_the_room_changes_nothing(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    """Progress callbacks of the partner's leg (one UPDATE each, calls._partner_progressed)."""
    room, child = _start(phone, programme, "CApartner")
    status = f"/twilio/status?room={room}"
    assert programme.call("CApartner").partner_call_sid == child

    def send(sid: str, state: str, seq: int) -> None:
        phone.post(
            status, {"CallSid": sid, "CallStatus": state, "SequenceNumber": str(seq), "Timestamp": stamp(seq)}
        )

    send(child, "ringing", 1)
    assert programme.call("CApartner").partner_status == "ringing"
    send(child, "in-progress", 2)
    send(child, "ringing", 1)  # late
    send(child, "in-progress", 2)  # a repeat
    send("CAsomeoneelse", "in-progress", 3)  # not this room's leg
    call = programme.call("CApartner")
    assert (call.partner_status, call.partner_call_sid, call.outcome) == ("in-progress", child, "in_progress")
