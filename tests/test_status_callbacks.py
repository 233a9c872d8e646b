"""Status callbacks repeat and arrive out of order; the call row only moves forward."""

from __future__ import annotations

import itertools

import pytest

from app.models import Call, Pair
from app.telephone import Scripted, Telephone
from tests.conftest import ANA, FakeClock, Programme

Pairing = tuple[int, int, int]


def _bridged_call(phone: Telephone, sid: str, child: str) -> list[tuple[str, dict[str, str]]]:
    """The callbacks of a 300-second accepted call, after the caller's TwiML asked for the Dial."""
    phone.post("/twilio/voice", {"CallSid": sid, "From": ANA, "CallStatus": "ringing"})
    whisper = {"CallSid": child, "ParentCallSid": sid}
    return [
        ("/twilio/voice/whisper", whisper),
        ("/twilio/voice/whisper-answer", {**whisper, "Digits": "1"}),
        ("/twilio/status", {**whisper, "CallStatus": "ringing", "SequenceNumber": "1"}),
        ("/twilio/status", {**whisper, "CallStatus": "in-progress", "SequenceNumber": "2"}),
        (
            "/twilio/status",
            {**whisper, "CallStatus": "completed", "CallDuration": "300", "SequenceNumber": "3"},
        ),
        (
            "/twilio/voice/dial-done",
            {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "300"},
        ),
        ("/twilio/status", {"CallSid": sid, "CallStatus": "in-progress", "SequenceNumber": "1"}),
        (
            "/twilio/status",
            {"CallSid": sid, "CallStatus": "completed", "CallDuration": "340", "SequenceNumber": "2"},
        ),
    ]


def _snapshot(call: Call) -> tuple[object, ...]:
    return (
        call.outcome,
        call.duration_seconds,
        call.status,
        call.partner_status,
        call.accepted_at is not None,
    )


def test_repeated_callbacks_change_nothing_the_second_time(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    events = _bridged_call(phone, "CArepeat", "CArepeatchild")
    for path, form in events:
        phone.post(path, form)
    first = _snapshot(programme.call("CArepeat"))
    for path, form in events + events:
        phone.post(path, form)
    assert _snapshot(programme.call("CArepeat")) == first == ("contact", 300, "completed", "completed", True)
    assert len(programme.rows(Call)) == 1


@pytest.mark.parametrize("seed", range(6))
def test_callbacks_in_any_order_give_the_same_call(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, seed: int
) -> None:
    sid, child = f"CAorder{seed}", f"CAorderchild{seed}"
    events = _bridged_call(phone, sid, child)
    # whisper-answer always precedes the end of the bridge; everything else may be shuffled
    head, tail = events[:2], events[2:]
    order = next(itertools.islice(itertools.permutations(tail), seed * 97, None))
    for path, form in [*head, *order]:
        phone.post(path, form)
    call = programme.call(sid)
    assert _snapshot(call) == ("contact", 300, "completed", "completed", True)


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
    phone.post(
        "/twilio/voice/dial-done",
        {"CallSid": record.sid, "DialCallStatus": "completed", "DialCallDuration": "120"},
    )
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at == contact_at


def test_twilio_reporting_completed_for_a_refused_partner_is_not_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    sid = "CArefused"
    phone.post("/twilio/voice", {"CallSid": sid, "From": ANA})
    phone.post("/twilio/voice/whisper", {"CallSid": "CAr1", "ParentCallSid": sid})
    phone.post("/twilio/voice/whisper-answer", {"CallSid": "CAr1", "ParentCallSid": sid, "Digits": "3"})
    phone.post(
        "/twilio/voice/dial-done", {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "400"}
    )
    call = programme.call(sid)
    assert (call.outcome, call.duration_seconds, call.accepted_at) == ("declined", 0, None)


def test_a_caller_who_hangs_up_before_the_bridge_is_not_a_missed_attempt(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    phone.post("/twilio/voice", {"CallSid": "CAquit", "From": "anonymous"})
    phone.post("/twilio/status", {"CallSid": "CAquit", "CallStatus": "completed", "CallDuration": "9"})
    assert programme.call("CAquit").outcome == "failed"
