"""What a call's outcome means in words, said in one place for the console, the API and the CLI.

The stored `outcome` is a count-friendly vocabulary (contact, short, declined...). A nurse needs
what happened: "did not press 1" rather than "declined", "locked out" rather than "failed". The
words are derived here from the call row alone (outcome, kind, end_reason, who answered, talk
time), so every surface says the same thing about the same call.
"""

from __future__ import annotations

from app.models import Call
from ivr.vocab import CallKind, EndReason, Outcome

# a caller who keyed this many wrong numbers was told goodbye (ivr.flow.MAX_ID_TRIES)
_GAVE_UP_TRIES = 3


def duration(seconds: int | None) -> str:
    """Seconds as a person reads them: "40 s", "2 min 48 s", "1 h 5 min"."""
    s = max(int(seconds or 0), 0)
    if s < 60:
        return f"{s} s"
    minutes, secs = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _talk(call: Call) -> int:
    return call.talk_seconds if call.talk_seconds is not None else (call.duration_seconds or 0)


def _talked(call: Call) -> str | None:
    if call.outcome == Outcome.CONTACT:
        return f"talked {duration(_talk(call))}"
    if call.outcome == Outcome.SHORT:
        return f"short call ({duration(_talk(call))})"
    return None


def _reminder(call: Call) -> str:
    talked = _talked(call)
    if talked is not None:
        return f"connected to partner, {talked}"
    if call.end_reason == EndReason.ANSWERING_MACHINE and call.bridged_at is None:
        return "left a message on the machine"
    if call.end_reason == EndReason.REMINDER_NOT_TAKEN:
        return "answered, did not connect"
    if call.bridged_at is not None or call.accepted_at is not None:
        # pressed 1 and the partner's phone was rung: what came of that ring
        return "connected to partner" if call.accepted_at else f"partner: {_peer(call)}"
    return _common(call) or "answered, did not connect"


def _outreach(call: Call) -> str:
    if call.outcome in (Outcome.CONTACT, Outcome.SHORT):
        return f"talked {duration(_talk(call))}"
    if call.outcome == Outcome.DECLINED:
        return "staff did not press 1"
    return _common(call) or str(call.outcome).replace("_", " ")


def _common(call: Call) -> str | None:
    match call.outcome:
        case Outcome.NO_ANSWER:
            return "no answer (machine)" if call.end_reason == EndReason.ANSWERING_MACHINE else "no answer"
        case Outcome.BUSY:
            return "busy"
        case Outcome.QUIET_HOURS:
            return "in quiet hours"
        case Outcome.IN_PROGRESS:
            return "in progress"
    return None


def _peer(call: Call) -> str:
    talked = _talked(call)
    if talked is not None:
        return talked
    if call.outcome == Outcome.DECLINED:
        # the partner answered and refused in the whisper, or said nothing at all
        return "did not press 1"
    if call.outcome == Outcome.FAILED:
        if call.end_reason == EndReason.PARTNER_LEG_NOT_PLACED:
            return "partner's phone could not be rung"
        if call.end_reason == EndReason.PARTNER_ON_ANOTHER_CALL:
            return "partner on another call"
        if call.initiator_id is None:
            # no one was recognised. Three wrong numbers is certain from the row; fewer is a
            # caller who hung up or a locked-out caller ID (the call row cannot tell which)
            if call.id_tries >= _GAVE_UP_TRIES:
                return "caller not identified"
            return "caller not identified (hung up or locked out)"
        return "hung up before the partner was rung"
    return _common(call) or str(call.outcome)


def call_label(call: Call) -> str:
    """What happened on this call, in words a nurse would use."""
    if call.kind == CallKind.REMINDER:
        return _reminder(call)
    if call.kind == CallKind.OUTREACH:
        return _outreach(call)
    return _peer(call)
