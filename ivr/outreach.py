"""A care-team call: a nurse rings a participant through Peerline, neither seeing the other's number.

Pure, like ivr/flow.py: facts in, TwiML out. The service first rings the nurse's own phone from
the programme's number (REST `calls.create`); this module decides what each leg hears:

  1. the nurse answers: "Peerline: connecting you to Ana. Press 1 to connect." (asked twice);
  2. on 1 the nurse waits in a conference room named by an opaque token, and the service rings
     the participant's phone, again from the programme's number (the `ring_participant` fact
     tells the adapter to do that after its answer has gone back);
  3. the participant answers: "This is your care team calling through Peerline.", then joins
     the same room. Either hanging up ends the room for both.

A room rather than `<Dial><Number>` from the nurse's leg: the participant's number then never
appears in any TwiML at all, only in the REST request that rings them, and the bridge is the
same kind of room the peer call uses. English only for now: the prompts catalogue (ivr/prompts.py)
is becoming bilingual separately; these strings move there once it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

VOICE = "Polly.Joanna"
RATE = "90%"

STAFF_CONNECT = "Peerline: connecting you to {name}. Press 1 to connect."
STAFF_RINGING = "Ringing them now. Please hold."
STAFF_NOT_CONNECTED = "The call was not connected. Goodbye."
PARTICIPANT_INTRO = "This is your care team calling through Peerline."
LOST = "Sorry, this care-team call has ended. Goodbye."

ROOM_STATUS_EVENTS = "start end join leave"


@dataclass(frozen=True)
class OutreachUrls:
    """Absolute URLs under /twilio/outreach; each carries only the opaque room name."""

    base: str

    def _url(self, path: str, room: str) -> str:
        return f"{self.base.rstrip('/')}/twilio/outreach/{path}?{urlencode({'room': room})}"

    def staff(self, room: str) -> str:
        return self._url("staff", room)

    def staff_answer(self, room: str) -> str:
        return self._url("staff-answer", room)

    def participant(self, room: str) -> str:
        return self._url("participant", room)

    def status(self, leg: str, room: str) -> str:
        return self._url(f"status/{leg}", room)


@dataclass(frozen=True)
class Decision:
    """What a leg hears, and whether the participant's phone should now be rung."""

    twiml: VoiceResponse
    ring_participant: bool = False

    def __str__(self) -> str:
        return str(self.twiml)


def _say(node: VoiceResponse, text: str) -> None:
    node.say(voice=VOICE).prosody(text, rate=RATE)
    node.pause(length=1)


def _room(response: VoiceResponse, room: str) -> None:
    dial = Dial()
    # both sides end the room when they hang up: a care-team call has exactly two people
    dial.conference(
        room, start_conference_on_enter=True, end_conference_on_exit=True, beep=False, wait_url=""
    )
    response.append(dial)


def staff_answered(first_name: str | None, urls: OutreachUrls, room: str) -> Decision:
    """The nurse's phone answered: say whom they are being connected to, and ask for 1."""
    response = VoiceResponse()
    if first_name is None:
        _say(response, LOST)
        response.hangup()
        return Decision(response)
    for _ in range(2):
        gather = response.gather(num_digits=1, action=urls.staff_answer(room), method="POST", timeout=6)
        gather.say(voice=VOICE).prosody(STAFF_CONNECT.format(name=first_name), rate=RATE)
    _say(response, STAFF_NOT_CONNECTED)
    response.hangup()
    return Decision(response)


def staff_pressed(digits: str, room: str, *, known: bool) -> Decision:
    """The nurse pressed a key: 1 waits in the room while the participant is rung."""
    response = VoiceResponse()
    if not known or digits != "1":
        _say(response, STAFF_NOT_CONNECTED if known else LOST)
        response.hangup()
        return Decision(response)
    _say(response, STAFF_RINGING)
    _room(response, room)
    return Decision(response, ring_participant=True)


def participant_answered(room: str, *, known: bool) -> Decision:
    """The participant's phone answered: who is calling, then the room with the nurse."""
    response = VoiceResponse()
    if not known:
        _say(response, LOST)
        response.hangup()
        return Decision(response)
    _say(response, PARTICIPANT_INTRO)
    _room(response, room)
    return Decision(response)


def first_name(name: str) -> str:
    """What the nurse hears: the first word of the participant's name or alias."""
    return name.split()[0] if name.split() else name
