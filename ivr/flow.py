"""The call, step by step, as a nurse would write it on a call sheet.

Each step takes plain facts and returns a `Step`: the TwiML to send back and the
effects to record, as data. Nothing here touches a database or the web.

  1. inbound          a call comes in: known caller ID, or ask for the home number
  2. identify         the keyed home number, three tries, lockout after too many
  3. connect          greet, treatment notice, then quiet hours / not paired / bridge
  4. bridge           <Dial> the partner with the programme's caller ID, whisper first
  5. whisper          partner's leg: notice, "press 1 to talk"; 1 is the only acceptance
  6. dial_done        the caller is still on the line: say how it ended, offer a message
  7. message          record a message for the care team
  8. outcome          what a finished call counts as (contact, short, declined, ...)
  9. reminder         an outbound reminder call: "press 1 to talk now", then 3-4 as above
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from twilio.twiml.voice_response import VoiceResponse

from ivr import prompts
from ivr.quiet_hours import QuietHours, is_quiet, quiet_ends_at, zone
from ivr.speech import ask, say, spoken_digits, spoken_time

MAX_ID_TRIES = 3
DIAL_TIMEOUT_SECONDS = 30
MESSAGE_MAX_SECONDS = 180
STATUS_EVENTS = "initiated ringing answered completed"


# ---------------------------------------------------------------- facts


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    timezone: str
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class Partner(Person):
    phone: str = ""


@dataclass(frozen=True)
class Caller:
    """An identified participant and, when in an active pair, the partner."""

    person: Person
    pair_id: int | None = None
    partner: Partner | None = None
    missed_from_partner: int = 0


@dataclass(frozen=True)
class Urls:
    """Absolute callback URLs; Twilio needs them absolute and signs them as written."""

    base: str

    def step(self, name: str) -> str:
        return f"{self.base.rstrip('/')}/twilio/voice/{name}"

    @property
    def status(self) -> str:
        return f"{self.base.rstrip('/')}/twilio/status"

    @property
    def recording(self) -> str:
        return f"{self.base.rstrip('/')}/twilio/recording"


@dataclass(frozen=True)
class Line:
    """What every step needs to know about the programme's own line."""

    urls: Urls
    programme_number: str
    now: datetime


# ---------------------------------------------------------------- effects


@dataclass(frozen=True)
class Identified:
    participant_id: int
    pair_id: int | None


@dataclass(frozen=True)
class NoticePlayed:
    version: str


@dataclass(frozen=True)
class WrongNumber:
    """A keyed number that is not enrolled: counts toward this caller ID's lockout."""


@dataclass(frozen=True)
class PartnerInQuietHours:
    partner_id: int


@dataclass(frozen=True)
class BridgeStarted:
    partner_id: int


@dataclass(frozen=True)
class PartnerAccepted:
    at: datetime


@dataclass(frozen=True)
class DialFinished:
    status: str
    talk_seconds: int | None


@dataclass(frozen=True)
class MachineAnswered:
    """A reminder reached an answering machine: it heard the short message and nothing else."""


Effect = (
    Identified
    | NoticePlayed
    | WrongNumber
    | PartnerInQuietHours
    | BridgeStarted
    | PartnerAccepted
    | DialFinished
    | MachineAnswered
)


@dataclass
class Step:
    twiml: VoiceResponse
    effects: list[Effect] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.twiml)


# ---------------------------------------------------------------- 1. inbound


def inbound(caller: Caller | None, line: Line, *, locked_out: bool = False) -> Step:
    if caller is not None:
        return connect(caller, line)
    if locked_out:
        return _goodbye(prompts.LOCKED_OUT)
    return ask_home_number(line)


def ask_home_number(line: Line, *, first: str | None = None) -> Step:
    response = VoiceResponse()
    if first:
        say(response, first)
    ask(
        response,
        prompts.ASK_HOME_NUMBER,
        line.urls.step("identify"),
        repeat=prompts.ASK_HOME_NUMBER_AGAIN,
        num_digits=None,
    )
    return Step(response)


# ---------------------------------------------------------------- 2. identify


def identify(found: Caller | None, line: Line, *, tries_before: int, locked_out: bool) -> Step:
    """The caller keyed a home number; `found` is who it belongs to, if anyone."""
    if locked_out:
        return _goodbye(prompts.LOCKED_OUT)
    if found is not None:
        return connect(found, line)
    if tries_before + 1 >= MAX_ID_TRIES:
        step = _goodbye(prompts.NUMBER_GIVE_UP)
    else:
        step = ask_home_number(line, first=prompts.NUMBER_NOT_FOUND)
    step.effects.append(WrongNumber())
    return step


# ---------------------------------------------------------------- 3. connect


def connect(caller: Caller, line: Line, *, greet: bool = True) -> Step:
    response = VoiceResponse()
    effects: list[Effect] = [Identified(caller.person.id, caller.pair_id)]
    if greet:
        name = caller.person.name
        say(response, prompts.GREETING_NAMED.format(name=name) if name else prompts.GREETING)
    if caller.missed_from_partner == 1:
        say(response, prompts.MISSED_ONCE)
    elif caller.missed_from_partner > 1:
        say(response, prompts.MISSED_MANY.format(count=caller.missed_from_partner))
    say(response, prompts.NOTICE)
    effects.append(NoticePlayed(prompts.NOTICE_VERSION))

    partner = caller.partner
    if partner is None or caller.pair_id is None:
        say(response, prompts.NOT_PAIRED)
        _offer_message(response, line)
        return Step(response, effects)

    if is_quiet(partner.quiet_hours, partner.timezone, line.now):
        assert partner.quiet_hours is not None
        reachable = quiet_ends_at(partner.quiet_hours, partner.timezone, line.now)
        caller_zone = zone(caller.person.timezone)
        when = spoken_time(reachable.astimezone(caller_zone), line.now.astimezone(caller_zone))
        say(response, prompts.PARTNER_QUIET.format(when=when))
        _offer_message(response, line)
        effects.append(PartnerInQuietHours(partner.id))
        return Step(response, effects)

    return bridge(response, effects, partner, line)


# ---------------------------------------------------------------- 4. bridge


def bridge(response: VoiceResponse, effects: list[Effect], partner: Partner, line: Line) -> Step:
    say(response, prompts.CONNECTING, prompts.STAR_HINT)
    dial = response.dial(
        caller_id=line.programme_number,
        hangup_on_star=True,
        timeout=DIAL_TIMEOUT_SECONDS,
        action=line.urls.step("dial-done"),
        method="POST",
    )
    dial.number(
        partner.phone,
        url=line.urls.step("whisper"),
        method="POST",
        status_callback=line.urls.status,
        status_callback_event=STATUS_EVENTS,
        status_callback_method="POST",
    )
    effects.append(BridgeStarted(partner.id))
    return Step(response, effects)


# ---------------------------------------------------------------- 5. whisper


def whisper(line: Line) -> Step:
    response = VoiceResponse()
    say(response, prompts.WHISPER, prompts.NOTICE)
    ask(response, prompts.WHISPER_ASK, line.urls.step("whisper-answer"), on_silence=prompts.WHISPER_DECLINED)
    return Step(response)


def whisper_answer(digits: str, line: Line) -> Step:
    if digits.strip() == "1":
        # an empty response ends the whisper and opens the bridge
        return Step(VoiceResponse(), [PartnerAccepted(line.now)])
    return _goodbye(prompts.WHISPER_DECLINED)


# ---------------------------------------------------------------- 6. dial done


def dial_done(dial_status: str, talk_seconds: int | None, accepted: bool, line: Line) -> Step:
    response = VoiceResponse()
    say(response, prompts.CALL_ENDED if accepted else prompts.PARTNER_UNREACHED)
    _offer_message(response, line)
    return Step(response, [DialFinished(dial_status, talk_seconds)])


# ---------------------------------------------------------------- 7. message


def message_menu(digits: str, line: Line) -> Step:
    if digits.strip() != "1":
        return _goodbye(prompts.GOODBYE)
    return record_message(line)


def record_message(line: Line) -> Step:
    response = VoiceResponse()
    say(response, prompts.RECORD_PROMPT)
    response.record(
        max_length=MESSAGE_MAX_SECONDS,
        finish_on_key="#",
        play_beep=True,
        action=line.urls.step("message-done"),
        method="POST",
        recording_status_callback=line.urls.recording,
        recording_status_callback_method="POST",
    )
    say(response, prompts.MESSAGE_THANKS)
    response.hangup()
    return Step(response)


def message_done() -> Step:
    return _goodbye(prompts.MESSAGE_THANKS)


# ---------------------------------------------------------------- 9. reminder


def reminder(person: Person | None, answered_by: str, line: Line) -> Step:
    """Twilio answered our reminder call; `answered_by` comes from machine detection."""
    if answered_by.startswith(("machine", "fax")):
        step = _goodbye(prompts.REMINDER_MACHINE)
        step.effects.append(MachineAnswered())
        return step
    if person is None:
        return _goodbye(prompts.GOODBYE)
    response = VoiceResponse()
    say(response, prompts.REMINDER_GREETING.format(name=person.name), prompts.REMINDER)
    ask(response, prompts.REMINDER_ASK, line.urls.step("reminder-answer"), on_silence=prompts.REMINDER_LATER)
    return Step(response)


def reminder_answer(digits: str, caller: Caller | None, line: Line) -> Step:
    if digits.strip() != "1" or caller is None:
        return _goodbye(prompts.REMINDER_LATER)
    return connect(caller, line, greet=False)


# ---------------------------------------------------------------- trouble


def lost(line: Line) -> Step:
    """A request we cannot place in any call: apologise and still offer the care team."""
    response = VoiceResponse()
    say(response, prompts.LOST)
    _offer_message(response, line)
    return Step(response)


def apology(support_number: str | None) -> Step:
    """The service itself is in trouble (e.g. the database is down)."""
    response = VoiceResponse()
    say(response, prompts.APOLOGY)
    if support_number:
        say(response, prompts.SUPPORT.format(digits=spoken_digits(support_number)))
    response.hangup()
    return Step(response)


def empty() -> VoiceResponse:
    return VoiceResponse()


def _offer_message(response: VoiceResponse, line: Line) -> None:
    ask(response, prompts.OFFER_MESSAGE, line.urls.step("message"), on_silence=prompts.GOODBYE)


def _goodbye(text: str) -> Step:
    response = VoiceResponse()
    say(response, text)
    response.hangup()
    return Step(response)


# ---------------------------------------------------------------- 8. outcome


class Outcome(enum.StrEnum):
    CONTACT = "contact"
    SHORT = "short"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    QUIET_HOURS = "quiet_hours"
    IN_PROGRESS = "in_progress"


def classify(
    *, accepted: bool, talk_seconds: int | None, dial_status: str | None, min_contact_seconds: int
) -> Outcome:
    """What a bridged call counts as. Acceptance comes only from the whisper's 1:
    Twilio may report `completed` for a partner who refused."""
    if accepted:
        if talk_seconds is None:
            return Outcome.IN_PROGRESS
        return Outcome.CONTACT if talk_seconds >= min_contact_seconds else Outcome.SHORT
    match dial_status:
        case None | "":
            return Outcome.IN_PROGRESS
        case "busy":
            return Outcome.BUSY
        case "failed":
            return Outcome.FAILED
        case "no-answer" | "canceled":
            return Outcome.NO_ANSWER
        case "completed" | "answered":
            return Outcome.DECLINED
        case _:
            return Outcome.FAILED
