"""The call, step by step, as a nurse would write it on a call sheet.

Each step takes plain facts and returns a `Step`: the TwiML to send back and the
effects to record, as data. Nothing here touches a database or the web; effects that
need Twilio's REST API (ring the partner, move a live leg) are data too, carried out
by the app once the answer has gone back.

  1. inbound          a call comes in: known caller ID, or greet and ask for the home number
  2. identify         the keyed home number, three tries, lockout after too many
  3. connect          greet, treatment notice, then not paired / quiet hours / partner busy /
                      "I am calling your partner": the caller joins the room, the partner rings
  4. hold             what someone alone in the room hears (the room's waitUrl)
  5. whisper          partner's leg: who calls, the notice, "press 1"; 1 joins the room
  6. stepped out      either partner pressed star: the menu; the other is held
  7. away             the menu's answer: a message, back to the partner, or a nurse
  8. told             a live leg moved by the app: partner stepped away / hung up / unreached
  9. message          record a message for the care team
 10. reminder         an outbound reminder call: "press 1 to talk now", then 3 as above
 11. a leg ended      who is told, what is hung up
 12. outcome          talk time from the room's joins and leaves; what a call counts as
 13. trouble          a request that fits no call, or the service itself in trouble

and last, the building blocks several steps share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from ivr import prompts
from ivr.prompts import Prompt as P
from ivr.quiet_hours import QuietHours, is_quiet, quiet_ends_at, zone
from ivr.rendered import Rendered
from ivr.speech import Question, Speaker, Spoken, ask, say, spoken_digits, spoken_number, spoken_time
from ivr.vocab import (
    ROOM_EVENTS,
    AnsweredBy,
    CallKind,
    CallStatus,
    EndReason,
    Language,
    Leg,
    Place,
    RoomEvent,
    StepName,
)

# `Outcome` lived here first: `flow.Outcome` still works, the vocabulary is its home
from ivr.vocab import Outcome as Outcome

MAX_ID_TRIES = 3
PARTNER_RING_SECONDS = 30
NURSE_RING_SECONDS = 30
MESSAGE_MAX_SECONDS = 180
LOCKOUT_FAILURES = 6
LOCKOUT_WINDOW = timedelta(hours=1)
HOLD_PAUSE_SECONDS = 15


# ---------------------------------------------------------------- facts


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    timezone: str
    quiet_hours: QuietHours | None = None
    # the language this person hears: their own, or the one they chose on this call
    language: Language = Language.EN


@dataclass(frozen=True)
class Partner(Person):
    # already on a live Peerline call (their own, a reminder, or another room): not rung
    on_call: bool = False


@dataclass(frozen=True)
class Caller:
    """An identified participant and, when in an active pair, the partner."""

    person: Person
    pair_id: int | None = None
    partner: Partner | None = None
    missed_from_partner: int = 0


@dataclass(frozen=True)
class Urls:
    """Absolute callback URLs; Twilio needs them absolute and signs them as written.

    The only thing a URL ever carries is an opaque room name: never a number or a name.
    """

    base: str

    def step(self, name: StepName, **query: str) -> str:
        url = f"{self.base.rstrip('/')}/twilio/voice/{name}"
        return f"{url}?{urlencode(query)}" if query else url

    @property
    def status(self) -> str:
        return f"{self.base.rstrip('/')}/twilio/status"

    def leg_status(self, room: str) -> str:
        """Status callbacks of the partner's leg: the room says which call it belongs to
        even before Twilio's answer with the leg's SID has been stored."""
        return f"{self.status}?{urlencode({'room': room})}"

    @property
    def recording(self) -> str:
        return f"{self.base.rstrip('/')}/twilio/recording"

    @property
    def conference(self) -> str:
        return f"{self.base.rstrip('/')}/twilio/conference"


@dataclass(frozen=True)
class Notice:
    """The treatment notice as said on a call: the version on record, and its words in
    every language (an admin manages it: app/services/notices.py)."""

    version: str
    texts: Mapping[Language, str]

    def text(self, language: Language) -> str:
        # an active version has every language (activation refuses a gap); the built-in
        # English is the last resort for a version made before a language was added
        return self.texts.get(language) or prompts.text(P.NOTICE, language)


BUILT_IN_NOTICE = Notice(prompts.NOTICE_VERSION, {lang: prompts.text(P.NOTICE, lang) for lang in Language})


@dataclass(frozen=True)
class Line:
    """What every step needs to know about the programme's own line, and who is listening.

    `language` is the listener's: each step speaks it and writes it into every URL it
    gives Twilio (`?lang=`), so the next step of the same leg speaks it too.
    """

    urls: Urls
    programme_number: str
    now: datetime
    support_number: str | None = None
    # where the listener's phone is, so the care team's number is read as they would say it
    region: str = "US"
    # the staffed care-team line, only while it is staffed: then `0` puts a caller through
    nurse_line: str | None = None
    language: Language = Language.EN
    notice: Notice = BUILT_IN_NOTICE
    # recorded audio an admin gave a prompt in a language: played instead of the voice
    audio: Mapping[tuple[P, Language], str] = field(default_factory=dict)

    @property
    def speaker(self) -> Speaker:
        return Speaker(self.language, self.audio)

    @property
    def fixed(self) -> Hashable:
        """Everything here but the time: what TwiML built once for this line may depend on."""
        return (
            self.urls,
            self.programme_number,
            self.support_number,
            self.region,
            self.nurse_line,
            self.language,
            self.notice.version,
            tuple(sorted(self.notice.texts.items())),
            tuple(sorted(self.audio.items())),
        )

    def speaking(self, language: Language) -> Line:
        """The same line, heard by someone in another language (the other leg, a choice)."""
        return self if language == self.language else replace(self, language=language)

    def step(self, name: StepName, **query: str) -> str:
        """A step's URL for this listener: their language goes with it."""
        return self.urls.step(name, **query, lang=self.language.value)


@dataclass(frozen=True)
class Bridge:
    """What the call's row knows about both legs of a bridged call.

    `place` is where each leg's own webhooks last put it; a leg whose status is not
    final is live (the partner's leg counts as live before it is placed: it is about
    to ring).
    """

    room: str
    accepted: bool = False
    caller_status: CallStatus | None = None
    caller_place: Place | None = Place.ROOM
    partner_status: CallStatus | None = None
    partner_place: Place | None = None
    partner_placed: bool = False

    def status(self, leg: Leg) -> CallStatus | None:
        return self.caller_status if leg == Leg.CALLER else self.partner_status

    def place(self, leg: Leg) -> Place | None:
        return self.caller_place if leg == Leg.CALLER else self.partner_place

    def live(self, leg: Leg) -> bool:
        status = self.status(leg)
        return status is None or not status.is_terminal

    def in_room(self, leg: Leg) -> bool:
        return self.live(leg) and self.place(leg) == Place.ROOM


# ---------------------------------------------------------------- effects


@dataclass(frozen=True)
class Identified:
    participant_id: int
    pair_id: int | None


@dataclass(frozen=True)
class NoticePlayed:
    """The treatment notice's version this leg heard: each party's is on record."""

    version: str
    leg: Leg = Leg.CALLER


@dataclass(frozen=True)
class Speaks:
    """The language a leg hears on this call: later steps reached by REST speak it too."""

    leg: Leg
    language: Language


@dataclass(frozen=True)
class WrongNumber:
    """A keyed number that is not enrolled: counts toward this caller ID's lockout."""


@dataclass(frozen=True)
class PartnerInQuietHours:
    partner_id: int


@dataclass(frozen=True)
class PartnerOnAnotherCall:
    partner_id: int


@dataclass(frozen=True)
class BridgeStarted:
    partner_id: int
    room: str


@dataclass(frozen=True)
class RingPartner:
    """Place the partner's leg with the REST API, once the caller's answer has gone back."""

    partner_id: int
    room: str


@dataclass(frozen=True)
class PartnerAccepted:
    at: datetime


@dataclass(frozen=True)
class Moved:
    """A leg is somewhere else now (its own webhook says so)."""

    leg: Leg
    place: Place


@dataclass(frozen=True)
class SteppedOut:
    leg: Leg


@dataclass(frozen=True)
class Tell:
    """Move a live leg to a step: `calls(sid).update(url=...)`, after the commit."""

    leg: Leg
    step: StepName


@dataclass(frozen=True)
class HangUp:
    """End a leg that is still ringing: nobody is left to talk to."""

    leg: Leg


@dataclass(frozen=True)
class MachineAnswered:
    """An answering machine took the call: it heard nothing that names anyone."""

    leg: Leg = Leg.CALLER
    answered_by: AnsweredBy | None = None


Effect = (
    Identified
    | NoticePlayed
    | Speaks
    | WrongNumber
    | PartnerInQuietHours
    | PartnerOnAnotherCall
    | BridgeStarted
    | RingPartner
    | PartnerAccepted
    | Moved
    | SteppedOut
    | Tell
    | HangUp
    | MachineAnswered
)


@dataclass(frozen=True)
class Step:
    # built with the SDK for this step, or the text of one built before (ivr/rendered.py)
    twiml: VoiceResponse | str
    effects: tuple[Effect, ...] = ()

    def __str__(self) -> str:
        return self.twiml if isinstance(self.twiml, str) else str(self.twiml)


# ---------------------------------------------------------------- 1. inbound


def inbound(caller: Caller | None, line: Line, *, room: str, locked_out: bool = False) -> Step:
    if caller is not None:
        return connect(caller, line, room=room)
    if locked_out:
        return Step(_goodbye(line, P.LOCKED_OUT, care_team=True))
    greeted = VoiceResponse()
    _say(greeted, line, P.GREETING)
    return Step(_ask_home_number(greeted, line, P.ASK_HOME_NUMBER, offer_languages=True))


def _ask_home_number(
    response: VoiceResponse, line: Line, prompt: P, *, offer_languages: bool = False
) -> VoiceResponse:
    """The home number, keyed and ended with pound. A caller we do not know yet also hears,
    each in its own voice, the key for every other language ("para español, oprima 2")."""
    also = (
        tuple(
            (Speaker(other, line.audio), line.speaking(other).speaker(P.LANGUAGE_CHOICE))
            for other in Language
            if other != line.language
        )
        if offer_languages
        else ()
    )
    return _ask(
        response,
        line,
        prompt,
        line.step(StepName.IDENTIFY),
        num_digits=None,
        also=also,
        on_silence=P.NO_ANSWER_GOODBYE,
    )


# ---------------------------------------------------------------- 2. identify


def identify(
    found: Caller | None, line: Line, *, room: str, tries_before: int, locked_out: bool, digits: str = ""
) -> Step:
    """The caller keyed a home number; `found` is who it belongs to, if anyone.

    Before any number, one key alone may choose a language (`2`: Spanish) or ask for the
    question again (`9`); neither is a wrong number.
    """
    if locked_out:
        return Step(_goodbye(line, P.LOCKED_OUT, care_team=True))
    if found is not None:
        return connect(found, line, room=room)
    key = digits.strip("#*")
    chosen = next((lang for lang, k in prompts.LANGUAGE_KEYS.items() if k == key), None)
    if chosen is not None and chosen != line.language:
        speaking = line.speaking(chosen)
        response = VoiceResponse()
        _say(response, speaking, P.GREETING)
        return Step(
            _ask_home_number(response, speaking, P.ASK_HOME_NUMBER),
            (Speaks(Leg.CALLER, chosen),),
        )
    if key == prompts.REPEAT_KEY or chosen is not None:
        question = P.ASK_HOME_NUMBER_AGAIN if tries_before else P.ASK_HOME_NUMBER
        return Step(_ask_home_number(VoiceResponse(), line, question, offer_languages=not tries_before))
    if tries_before + 1 >= MAX_ID_TRIES:
        return Step(_goodbye(line, P.NUMBER_GIVE_UP, care_team=True), (WrongNumber(),))
    response = VoiceResponse()
    _say(response, line, P.NUMBER_NOT_FOUND)
    return Step(_ask_home_number(response, line, P.ASK_HOME_NUMBER_AGAIN), (WrongNumber(),))


def is_locked_out(failures_in_window: int) -> bool:
    """Wrong home numbers keyed from one caller ID within LOCKOUT_WINDOW: enumeration defence."""
    return failures_in_window >= LOCKOUT_FAILURES


# ---------------------------------------------------------------- 3. connect

# the partner's calls that did not reach this person: they are told about them next time
# (a call they declined themselves is not news to them)
MISSED = (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.QUIET_HOURS, Outcome.FAILED)


def connect(caller: Caller, line: Line, *, room: str, greet: bool = True) -> Step:
    # from here on the caller hears their own language (or the one they chose by key)
    line = line.speaking(caller.person.language)
    heard: tuple[Effect, ...] = (
        Identified(caller.person.id, caller.pair_id),
        Speaks(Leg.CALLER, line.language),
        NoticePlayed(line.notice.version, Leg.CALLER),
    )
    partner = caller.partner
    when: str | None = None
    if partner is None or caller.pair_id is None:
        outcome, effects = _Connected.NOT_PAIRED, heard
    elif partner.quiet_hours is not None and is_quiet(partner.quiet_hours, partner.timezone, line.now):
        reachable = quiet_ends_at(partner.quiet_hours, partner.timezone, line.now)
        caller_zone = zone(caller.person.timezone)
        when = spoken_time(reachable.astimezone(caller_zone), line.now.astimezone(caller_zone), line.language)
        outcome, effects = _Connected.QUIET, (*heard, PartnerInQuietHours(partner.id))
    elif partner.on_call:
        outcome, effects = _Connected.BUSY, (*heard, PartnerOnAnotherCall(partner.id))
    else:
        outcome = _Connected.BRIDGE
        effects = (*heard, BridgeStarted(partner.id, room), RingPartner(partner.id, room))
    name = caller.person.name if greet else None
    return Step(
        _CONNECT.render(line, name=name, room=room, key=(outcome, greet, caller.missed_from_partner, when)),
        effects,
    )


class _Connected(StrEnum):
    NOT_PAIRED = "not paired"
    QUIET = "partner in quiet hours"
    BUSY = "partner on another call"
    BRIDGE = "bridge"


def _connect_twiml(line: Line, name: str | None, room: str, key: tuple[Any, ...]) -> VoiceResponse:
    """What the caller hears once known: greeting, missed calls, the notice, then the outcome."""
    outcome, greet, missed, when = key
    response = VoiceResponse()
    if greet:
        _say(response, line, line.speaker(P.GREETING_NAMED, name=name) if name else P.GREETING)
    if missed == 1:
        _say(response, line, P.MISSED_ONCE)
    elif missed > 1:
        _say(response, line, line.speaker(P.MISSED_MANY, count=missed))
    _say(response, line, line.speaker.plain(line.notice.text(line.language)))
    if outcome == _Connected.NOT_PAIRED:
        _say(response, line, P.NOT_PAIRED)
        _care_team_number(response, line)
        return _offer_message(response, line)
    if outcome == _Connected.QUIET:
        _say(response, line, line.speaker(P.PARTNER_QUIET, when=when))
        return _offer_message(response, line)
    if outcome == _Connected.BUSY:
        _say(response, line, P.PARTNER_BUSY)
        return _offer_message(response, line)
    _say(response, line, P.CONNECTING, P.STAR_HINT, P.REPEAT_HINT)
    response.append(_join_room(room, line))
    return response


_CONNECT = Rendered(_connect_twiml)


def _join_room(room: str, line: Line) -> Dial:
    """Into the conference room through a Dial of one's own: star then leaves the room and
    Twilio asks this leg's Dial action what next, while the room goes on."""
    dial = Dial(hangup_on_star=True, action=line.step(StepName.STEPPED_OUT, room=room), method="POST")
    dial.conference(
        room,
        beep=False,
        start_conference_on_enter=True,
        end_conference_on_exit=False,
        # each leg's own waitUrl: the hold line in that listener's language
        wait_url=line.step(StepName.HOLD),
        wait_method="POST",
        status_callback=line.urls.conference,
        # TwiML wants the events as one space-separated string, not a list
        status_callback_event=" ".join(ROOM_EVENTS),
        status_callback_method="POST",
    )
    return dial


# ---------------------------------------------------------------- 4. hold


def hold(line: Line) -> Step:
    """The room's waitUrl: Twilio plays it to someone alone in a room that has not started.

    Our own words and quiet, never music fetched from elsewhere; it asks for itself again
    so the line is never silent for long.
    """
    return Step(_HOLD.render(line, name=None, room=NO_ROOM, key=()))


# The steps most calls take are built once per shape (ivr/rendered.py), like the
# caller's connect: the same words and URLs for every call on the same line, with the
# room (and a name) filled in. `NO_ROOM` stands in for a step whose TwiML names none.
NO_ROOM = "-"


def _hold_twiml(line: Line, name: str | None, room: str, key: tuple[Any, ...]) -> VoiceResponse:
    response = VoiceResponse()
    response.pause(length=5)
    _say(response, line, P.HOLD)
    response.pause(length=HOLD_PAUSE_SECONDS)
    response.redirect(line.step(StepName.HOLD), method="POST")
    return response


_HOLD = Rendered(_hold_twiml)


# ---------------------------------------------------------------- 5. whisper


def whisper(
    bridge: Bridge, answered_by: AnsweredBy | None, line: Line, *, person: bool = False, digits: str = ""
) -> Step:
    """The partner's phone answered; `line` speaks the partner's language. `person` once a
    key was pressed after a neutral greeting (9 there asks the question again)."""
    if answered_by is not None and answered_by.is_machine:
        # a machine may be heard by anyone: it hears nothing at all
        hang_up = VoiceResponse()
        hang_up.hangup()
        return Step(hang_up, (MachineAnswered(Leg.PARTNER, answered_by),))
    if not bridge.live(Leg.CALLER):
        return Step(_goodbye(line, P.CALLER_GONE), (Moved(Leg.PARTNER, Place.DONE),))
    if answered_by == AnsweredBy.UNKNOWN and (not person or digits.strip() == prompts.REPEAT_KEY):
        check = VoiceResponse()
        if not person:
            _say(check, line, P.CHECK_GREETING)
        _ask(
            check,
            line,
            P.CHECK_ASK,
            line.step(StepName.WHISPER, room=bridge.room, person="1"),
            on_silence=P.JUST_GOODBYE,
        )
        return Step(check)
    return Step(
        _WHISPER.render(line, name=None, room=bridge.room, key=()),
        (
            Moved(Leg.PARTNER, Place.WHISPER),
            Speaks(Leg.PARTNER, line.language),
            NoticePlayed(line.notice.version, Leg.PARTNER),
        ),
    )


def _whisper_twiml(line: Line, name: str | None, room: str, key: tuple[Any, ...]) -> VoiceResponse:
    """The partner hears the treatment notice and is asked to take the call."""
    response = VoiceResponse()
    _say(response, line, P.WHISPER, line.speaker.plain(line.notice.text(line.language)))
    _ask_to_talk(response, Bridge(room), line)
    return response


_WHISPER = Rendered(_whisper_twiml)


def _ask_to_talk(response: VoiceResponse, bridge: Bridge, line: Line) -> None:
    _ask(
        response,
        line,
        P.WHISPER_ASK,
        line.step(StepName.WHISPER_ANSWER, room=bridge.room),
        repeat=P.WHISPER_ASK_AGAIN,
        repeat_action=line.step(StepName.WHISPER_ANSWER, room=bridge.room, again="1"),
        on_silence=P.WHISPER_DECLINED,
    )


def whisper_answer(digits: str, bridge: Bridge, line: Line, *, again: bool = False) -> Step:
    """The partner pressed a key. Only 1 is acceptance: Twilio reports `completed` for a
    partner who picked up and refused. 9 asks the question again."""
    key = digits.strip()
    if key == "1":
        if not bridge.live(Leg.CALLER):
            return Step(_goodbye(line, P.CALLER_GONE), (Moved(Leg.PARTNER, Place.DONE),))
        return Step(
            _ACCEPTED.render(line, name=None, room=bridge.room, key=()),
            (PartnerAccepted(line.now), Moved(Leg.PARTNER, Place.ROOM)),
        )
    if key == prompts.REPEAT_KEY:
        response = VoiceResponse()
        _ask_to_talk(response, bridge, line)
        return Step(response)
    if again:
        return Step(_goodbye(line, P.WHISPER_DECLINED))
    response = VoiceResponse()
    _ask(
        response,
        line,
        P.WHISPER_ASK_AGAIN,
        line.step(StepName.WHISPER_ANSWER, room=bridge.room, again="1"),
        on_silence=P.WHISPER_DECLINED,
        once=True,  # the second chance; after it the call is let go
    )
    return Step(response)


def _accepted_twiml(line: Line, name: str | None, room: str, key: tuple[Any, ...]) -> VoiceResponse:
    """The partner took the call: into the room."""
    response = VoiceResponse()
    _say(response, line, P.STAR_HINT)
    response.append(_join_room(room, line))
    return response


_ACCEPTED = Rendered(_accepted_twiml)


# ---------------------------------------------------------------- 6. stepped out


def stepped_out(leg: Leg, bridge: Bridge, line: Line, *, hung_up: bool) -> Step:
    """A leg left the room: Twilio asks its Dial action. Star leaves the room and the call
    goes on; a leg that hung up is gone and its final status says the rest."""
    if hung_up:
        return Step(VoiceResponse())
    effects: list[Effect] = [SteppedOut(leg), Moved(leg, Place.AWAY)]
    if bridge.in_room(leg.other):
        # alone in a room that has started, the other would hear only silence
        effects.append(Tell(leg.other, StepName.PARTNER_AWAY))
    step = _menu(leg, bridge, line)
    return Step(step.twiml, (*effects, *step.effects))


def away_menu(leg: Leg, bridge: Bridge, line: Line) -> Step:
    """The menu again: after the nurse, after a recording that came out empty, after a wrong key."""
    return _menu(leg, bridge, line)


def _menu(leg: Leg, bridge: Bridge, line: Line) -> Step:
    if not bridge.live(leg.other):
        return _partner_gone(leg, line)
    choices: list[Spoken] = [P.MENU_MESSAGE, P.MENU_BACK]
    if line.nurse_line:
        choices.append(P.MENU_NURSE)
    response = VoiceResponse()
    _ask(
        response,
        line,
        tuple(choices),
        line.step(StepName.AWAY, room=bridge.room),
        # silence twice: back to the partner, who is waiting
        then=line.step(StepName.AWAY, room=bridge.room),
    )
    return Step(response)


# ---------------------------------------------------------------- 7. away


def away(digits: str, leg: Leg, bridge: Bridge, line: Line) -> Step:
    """The stepped-out menu's answer; no key at all means back to the partner. Any other
    key (9 among them) says the menu again."""
    match digits.strip():
        case "1":
            return Step(_record_message(line, room=bridge.room))
        case "0" if line.nurse_line:
            response = VoiceResponse()
            _say(response, line, P.NURSE_CONNECTING)
            dial = response.dial(
                caller_id=line.programme_number,
                timeout=NURSE_RING_SECONDS,
                # after the nurse, the menu again: back to the partner is one key away
                action=line.step(StepName.AWAY_MENU, room=bridge.room),
                method="POST",
            )
            dial.number(line.nurse_line)
            return Step(response)
        case "" | "2":
            if not bridge.live(leg.other):
                return _partner_gone(leg, line)
            response = VoiceResponse()
            if not digits.strip():
                _say(response, line, P.BACK_TO_PARTNER)
            response.append(_join_room(bridge.room, line))
            return Step(response, (Moved(leg, Place.ROOM),))
        case _:
            return _menu(leg, bridge, line)


# ---------------------------------------------------------------- 8. told


def partner_away(leg: Leg, bridge: Bridge, line: Line) -> Step:
    """The app moved this leg out of the room: the other stepped away. Say so, then back in,
    alone in a fresh room whose waitUrl keeps the line from going silent."""
    if not bridge.live(leg.other):
        return _partner_gone(leg, line)
    response = VoiceResponse()
    _say(response, line, P.PARTNER_AWAY)
    response.append(_join_room(bridge.room, line))
    return Step(response, (Moved(leg, Place.ROOM),))


def partner_gone(leg: Leg, line: Line) -> Step:
    """The other partner hung up while this one was in the room."""
    return _partner_gone(leg, line)


def let_go(line: Line) -> Step:
    """A leg that belongs to no call we know of (its room is gone): a polite goodbye."""
    return Step(_goodbye(line, P.WHISPER_DECLINED))


def partner_unreached(line: Line) -> Step:
    """The partner's leg never got to the room: no answer, busy, declined, a machine, failed."""
    twiml = _TOLD.render(line, name=None, room=NO_ROOM, key=(P.PARTNER_UNREACHED,))
    return Step(twiml, (Moved(Leg.CALLER, Place.DONE),))


def _partner_gone(leg: Leg, line: Line) -> Step:
    return Step(
        _TOLD.render(line, name=None, room=NO_ROOM, key=(P.PARTNER_HUNG_UP,)), (Moved(leg, Place.DONE),)
    )


def _told_twiml(line: Line, name: str | None, room: str, key: tuple[Any, ...]) -> VoiceResponse:
    """What became of the partner (`key`: the prompt), and the offer of a message."""
    (prompt,) = key
    response = VoiceResponse()
    _say(response, line, prompt)
    return _offer_message(response, line)


_TOLD = Rendered(_told_twiml)


# ---------------------------------------------------------------- 9. message


def message_menu(digits: str, line: Line) -> Step:
    key = digits.strip()
    if key == prompts.REPEAT_KEY:
        return Step(_offer_message(VoiceResponse(), line))
    if key != "1":
        return Step(_goodbye(line, P.GOODBYE))
    return Step(_record_message(line))


def _record_message(line: Line, *, room: str | None = None) -> VoiceResponse:
    response = VoiceResponse()
    _say(response, line, P.RECORD_PROMPT)
    done = line.step(StepName.MESSAGE_DONE, room=room) if room else line.step(StepName.MESSAGE_DONE)
    response.record(
        max_length=MESSAGE_MAX_SECONDS,
        finish_on_key="#",
        play_beep=True,
        action=done,
        method="POST",
        recording_status_callback=line.urls.recording,
        recording_status_callback_method="POST",
    )
    # reached only when nothing was recorded: Twilio then skips the action and goes on here,
    # so nobody is thanked for a message that does not exist
    _say(response, line, P.NO_MESSAGE)
    if room:
        response.redirect(line.step(StepName.AWAY_MENU, room=room), method="POST")
    else:
        _say(response, line, P.GOODBYE)
        response.hangup()
    return response


def message_done(line: Line, *, leg: Leg | None = None, bridge: Bridge | None = None) -> Step:
    """A message was recorded (the message itself exists once Twilio says the recording is
    complete). One who stepped out of a call is offered the way back."""
    response = VoiceResponse()
    _say(response, line, P.MESSAGE_THANKS)
    if leg is None or bridge is None:
        _say(response, line, P.GOODBYE)
        response.hangup()
        return Step(response)
    if not bridge.live(leg.other):
        _say(response, line, P.PARTNER_HUNG_UP, P.GOODBYE)
        response.hangup()
        return Step(response, (Moved(leg, Place.DONE),))
    _ask(
        response,
        line,
        P.MENU_BACK,
        line.step(StepName.AWAY, room=bridge.room),
        then=line.step(StepName.AWAY, room=bridge.room),
    )
    return Step(response)


# ---------------------------------------------------------------- 10. reminder


def reminder(
    person: Person | None,
    answered_by: AnsweredBy | None,
    line: Line,
    *,
    confirmed: bool = False,
    digits: str = "",
) -> Step:
    """Twilio answered our reminder call; `answered_by` comes from machine detection (None
    when Twilio did not say: a person is assumed). `unknown` is not known to be a person:
    it hears no name until a key press shows someone is there (9 asks again)."""
    if person is not None:
        line = line.speaking(person.language)
    if answered_by is not None and answered_by.is_machine:
        return reminder_unconfirmed(line)
    if person is None:
        return Step(_goodbye(line, P.GOODBYE))
    if answered_by == AnsweredBy.UNKNOWN and (not confirmed or digits.strip() == prompts.REPEAT_KEY):
        check = VoiceResponse()
        if not confirmed:
            _say(check, line, P.CHECK_GREETING)
        _ask(
            check,
            line,
            P.REMINDER_CHECK_ASK,
            line.step(StepName.REMINDER, person="1"),
            then=line.step(StepName.REMINDER_UNCONFIRMED),
        )
        return Step(check)
    twiml = _REMINDED.render(line, name=person.name, room=NO_ROOM, key=())
    return Step(twiml, (Speaks(Leg.CALLER, line.language),))


def _reminded_twiml(line: Line, name: str | None, room: str, key: tuple[Any, ...]) -> VoiceResponse:
    """The reminder itself, to the person it is for: their name, and the question."""
    response = VoiceResponse()
    _say(response, line, line.speaker(P.REMINDER_GREETING, name=name), P.REMINDER)
    _ask_reminder(response, line)
    return response


_REMINDED = Rendered(_reminded_twiml)


def _ask_reminder(response: VoiceResponse, line: Line) -> None:
    _ask(
        response,
        line,
        P.REMINDER_ASK,
        line.step(StepName.REMINDER_ANSWER),
        on_silence=P.REMINDER_LATER,
    )


def reminder_unconfirmed(line: Line) -> Step:
    """A machine, or nobody pressed a key: the short message that names no one."""
    return Step(_goodbye(line, P.REMINDER_MACHINE), (MachineAnswered(),))


def reminder_answer(digits: str, caller: Caller | None, line: Line, *, room: str) -> Step:
    if digits.strip() == prompts.REPEAT_KEY and caller is not None:
        response = VoiceResponse()
        _ask_reminder(response, line.speaking(caller.person.language))
        return Step(response)
    if digits.strip() != "1" or caller is None:
        return Step(_goodbye(line, P.REMINDER_LATER))
    return connect(caller, line, room=room, greet=False)


# ---------------------------------------------------------------- 11. a leg ended


def leg_ended(ended: Leg, bridge: Bridge) -> tuple[Effect, ...]:
    """One leg's final status came. The other, still on the line, must not be left in the
    room alone: it is told at once. One in the menu finds out when it asks to go back."""
    other = ended.other
    if not bridge.live(other):
        return ()
    if ended == Leg.PARTNER:
        if bridge.in_room(Leg.CALLER):
            return (
                Tell(Leg.CALLER, StepName.PARTNER_GONE if bridge.accepted else StepName.PARTNER_UNREACHED),
            )
        return ()
    if bridge.partner_place is None:
        # still ringing (or not yet placed: the app checks again once it is)
        return (HangUp(Leg.PARTNER),) if bridge.partner_placed else ()
    if bridge.in_room(Leg.PARTNER):
        return (Tell(Leg.PARTNER, StepName.PARTNER_GONE),)
    return ()


# ---------------------------------------------------------------- 12. outcome


@dataclass(frozen=True)
class Ending:
    """What a call counts as, how long the partners talked, and why it ended if that needs saying."""

    outcome: Outcome
    duration_seconds: int
    end_reason: EndReason | None = None


@dataclass(frozen=True)
class RoomChange:
    """One conference callback, as stored: which room (Twilio's SID for it), what, who, when."""

    event: RoomEvent
    conference_sid: str
    call_sid: str | None
    at: datetime
    sequence: int | None = None


def talk_time(
    changes: Iterable[RoomChange],
    *,
    caller_sid: str,
    partner_sid: str | None,
    caller_ended_at: datetime | None = None,
    partner_ended_at: datetime | None = None,
) -> int:
    """Seconds both partners were in the room together, summed over every stretch.

    Computed afresh from every callback kept, sorted by Twilio's own times, so repeats and
    any order of arrival give the same answer. Hold (alone in the room), the whisper and
    the detours after star are never counted: only the overlap of the two legs' stretches.
    A stretch whose leave never came ends with its room or its leg.
    """
    if partner_sid is None:
        return 0
    kept = list(changes)
    caller = _stretches(kept, caller_sid, caller_ended_at)
    partner = _stretches(kept, partner_sid, partner_ended_at)
    together = timedelta()
    for start, end in caller:
        for other_start, other_end in partner:
            overlap = min(end, other_end) - max(start, other_start)
            if overlap > timedelta():
                together += overlap
    return round(together.total_seconds())


def _stretches(
    changes: list[RoomChange], call_sid: str, ended_at: datetime | None
) -> list[tuple[datetime, datetime]]:
    room_ended: dict[str, datetime] = {}
    for change in changes:
        if change.event == RoomEvent.END:
            room_ended[change.conference_sid] = min(
                change.at, room_ended.get(change.conference_sid, change.at)
            )
    mine: dict[str, list[RoomChange]] = defaultdict(list)
    for change in changes:
        if change.call_sid == call_sid and change.event in (RoomEvent.JOIN, RoomEvent.LEAVE):
            mine[change.conference_sid].append(change)
    stretches = []
    for conference, events in mine.items():
        # Twilio's sequence orders events within a second; without it a leave goes first,
        # since a leg cannot join a room it is already in
        events.sort(
            key=lambda c: (c.at, -1 if c.sequence is None else c.sequence, c.event != RoomEvent.LEAVE)
        )
        opened: datetime | None = None
        for event in events:
            if event.event == RoomEvent.JOIN and opened is None:
                opened = event.at
            elif event.event == RoomEvent.LEAVE and opened is not None:
                stretches.append((opened, event.at))
                opened = None
        if opened is not None:
            closed = room_ended.get(conference) or ended_at
            if closed is not None and closed >= opened:
                stretches.append((opened, closed))
    return stretches


@dataclass(frozen=True)
class BridgedCall:
    """What the callbacks have told so far about a call whose partner was rung."""

    accepted: bool
    caller_status: CallStatus | None = None
    partner_status: CallStatus | None = None
    machine: bool = False
    talk_seconds: int = 0

    @property
    def over(self) -> bool:
        legs = (self.caller_status, self.partner_status)
        return all(status is not None and status.is_terminal for status in legs)


def classify(
    *,
    accepted: bool,
    talk_seconds: int | None,
    partner_status: CallStatus | None,
    min_contact_seconds: int,
    machine: bool = False,
) -> Outcome:
    """What a bridged call counts as. Acceptance comes only from the whisper's 1."""
    if accepted:
        if talk_seconds is None:
            return Outcome.IN_PROGRESS
        return Outcome.CONTACT if talk_seconds >= min_contact_seconds else Outcome.SHORT
    if machine:
        return Outcome.NO_ANSWER
    match partner_status:
        case None:
            return Outcome.IN_PROGRESS
        case CallStatus.BUSY:
            return Outcome.BUSY
        case CallStatus.NO_ANSWER | CallStatus.CANCELED:
            return Outcome.NO_ANSWER
        case CallStatus.COMPLETED:
            return Outcome.DECLINED
        case CallStatus.FAILED:
            return Outcome.FAILED
        case _:
            return Outcome.IN_PROGRESS


def bridged_ending(call: BridgedCall, *, min_contact_seconds: int) -> Ending | None:
    """What a call whose partner was rung counts as, or None while that is not known yet.

    An accepted call is judged once both legs have ended (only then is every stretch in
    the room closed); a partner who never accepted is judged by how that leg ended.
    """
    outcome = classify(
        accepted=call.accepted,
        talk_seconds=call.talk_seconds if call.over else None,
        partner_status=call.partner_status
        if call.partner_status and call.partner_status.is_terminal
        else None,
        min_contact_seconds=min_contact_seconds,
        machine=call.machine,
    )
    if outcome == Outcome.IN_PROGRESS:
        return None
    if call.accepted:
        return Ending(outcome, call.talk_seconds)
    return Ending(outcome, 0, EndReason.ANSWERING_MACHINE if call.machine else None)


def unbridged_ending(kind: CallKind, status: CallStatus, *, heard_by_machine: bool) -> Ending:
    """A call that ended before any partner was rung.

    A peer call that never reached the room failed (the caller hung up, or was not
    identified); it is not a missed attempt. A reminder call is judged by how the
    reminded person's own phone answered.
    """
    if kind != CallKind.REMINDER:
        return Ending(Outcome.FAILED, 0, EndReason.BEFORE_DIAL)
    match status:
        case CallStatus.BUSY:
            return Ending(Outcome.BUSY, 0)
        case CallStatus.FAILED:
            return Ending(Outcome.FAILED, 0)
        case CallStatus.COMPLETED if not heard_by_machine:
            return Ending(Outcome.DECLINED, 0, EndReason.REMINDER_NOT_TAKEN)
        case _:
            return Ending(Outcome.NO_ANSWER, 0)


# ---------------------------------------------------------------- 13. trouble


def lost(line: Line) -> Step:
    """A request we cannot place in any call: apologise and still offer the care team."""
    response = VoiceResponse()
    _say(response, line, P.LOST)
    return Step(_offer_message(response, line))


def apology(support_number: str | None, region: str = "US", language: Language = Language.EN) -> Step:
    """The service itself is in trouble (e.g. the database is down)."""
    speaker = Speaker(language)
    response = VoiceResponse()
    say(response, speaker, P.APOLOGY)
    if support_number:
        number = spoken_number(support_number, region, language)
        say(response, speaker, speaker(P.SUPPORT, number=number), speaker(P.SUPPORT_AGAIN, number=number))
    response.hangup()
    return Step(response)


def fallback_apology(support_number: str | None) -> Step:
    """The number's "primary handler fails" answer, word for word as it has always been:
    it knows nothing of the caller, not even their country, so the number is read digit by
    digit, country code and all."""
    speaker = Speaker()
    response = VoiceResponse()
    say(response, speaker, P.APOLOGY)
    if support_number:
        say(response, speaker, speaker(P.SUPPORT, number=spoken_digits(support_number)))
    response.hangup()
    return Step(response)


def empty() -> Step:
    """The answer to a status, recording or conference callback: there is nothing to say."""
    return Step(_EMPTY)


# built by the SDK once: three of every four requests from Twilio are answered with it
_EMPTY = str(VoiceResponse())


# ---------------------------------------------------------------- building blocks


def _say(node: VoiceResponse, line: Line, *sentences: Spoken) -> None:
    say(node, line.speaker, *sentences)


def _ask(
    response: VoiceResponse,
    line: Line,
    prompt: Question,
    action: str,
    **options: Any,
) -> VoiceResponse:
    return ask(response, line.speaker, prompt, action, **options)


def _offer_message(response: VoiceResponse, line: Line) -> VoiceResponse:
    """End what the step has said so far with the offer of a care-team message."""
    return _ask(response, line, P.OFFER_MESSAGE, line.step(StepName.MESSAGE), on_silence=P.GOODBYE)


def _care_team_number(response: VoiceResponse, line: Line) -> None:
    """Whenever someone is told to call the care team: the number, as they would say it, twice."""
    if line.support_number:
        number = spoken_number(line.support_number, line.region, line.language)
        _say(
            response,
            line,
            line.speaker(P.SUPPORT, number=number),
            line.speaker(P.SUPPORT_AGAIN, number=number),
        )


def _goodbye(line: Line, prompt: P, *, care_team: bool = False) -> VoiceResponse:
    response = VoiceResponse()
    _say(response, line, prompt)
    if care_team:
        _care_team_number(response, line)
        _say(response, line, P.JUST_GOODBYE)
    response.hangup()
    return response
