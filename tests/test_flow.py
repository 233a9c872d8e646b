"""The call sheet, step by step: facts in; what the caller hears, the TwiML verbs and the effects out.

No HTTP and no database: every branch of every step in `ivr.flow`, and its rules.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from _pytest.mark import ParameterSet

import ivr.flow as flow
from ivr import prompts
from ivr.flow import (
    BridgedCall,
    BridgeStarted,
    Caller,
    Effect,
    Ending,
    HangUp,
    Identified,
    Line,
    MachineAnswered,
    Moved,
    NoticePlayed,
    Partner,
    PartnerAccepted,
    PartnerInQuietHours,
    PartnerOnAnotherCall,
    Person,
    RingPartner,
    RoomChange,
    Speaks,
    Step,
    SteppedOut,
    Tell,
    Urls,
    WrongNumber,
)
from ivr.quiet_hours import QuietHours
from ivr.speech import RATE, VOICES, spoken_number
from ivr.vocab import (
    AnsweredBy,
    CallKind,
    CallStatus,
    EndReason,
    Language,
    Leg,
    Outcome,
    Place,
    RoomEvent,
    StepName,
)

BASE = "https://peerline.example.org"
PROGRAMME = "+18005550100"
SUPPORT = "+16175550100"
NURSE = "+16175550177"
ROOM = "room-0123456789abcdef01234567"
# Tuesday 17 November 2026, 22:00 in Boston, 21:00 in Chicago
NOW = datetime(2026, 11, 18, 3, 0, tzinfo=UTC)
LINE = Line(Urls(BASE), PROGRAMME, NOW, support_number=SUPPORT)
NO_SUPPORT = Line(Urls(BASE), PROGRAMME, NOW)
STAFFED = dataclasses.replace(LINE, nurse_line=NURSE)

ANA = Person(1, "Ana", "America/New_York")
BEA = Partner(2, "Bea", "America/Chicago")
BEA_ASLEEP = dataclasses.replace(BEA, quiet_hours=QuietHours.parse("21:00-09:00"))
BEA_ON_A_CALL = dataclasses.replace(BEA, on_call=True)
PAIR = 10

PAIRED = Caller(ANA, PAIR, BEA)
MISSED_ONCE = Caller(ANA, PAIR, BEA, missed_from_partner=1)
MISSED_THRICE = Caller(ANA, PAIR, BEA, missed_from_partner=3)
NAMELESS = Caller(dataclasses.replace(ANA, name=""), PAIR, BEA)
UNPAIRED = Caller(ANA)
PARTNER_GONE = Caller(ANA, PAIR)  # in a pair whose partner cannot be called
PARTNER_ASLEEP = Caller(ANA, PAIR, BEA_ASLEEP)
PARTNER_BUSY = Caller(ANA, PAIR, BEA_ON_A_CALL)

# the two legs of a bridged call, in the states the steps care about
BOTH_IN = flow.Bridge(
    ROOM, accepted=True, caller_place=Place.ROOM, partner_place=Place.ROOM, partner_placed=True
)
PARTNER_AWAY = dataclasses.replace(BOTH_IN, partner_place=Place.AWAY)
CALLER_AWAY = dataclasses.replace(BOTH_IN, caller_place=Place.AWAY)
PARTNER_HUNG_UP = dataclasses.replace(BOTH_IN, partner_status=CallStatus.COMPLETED)
CALLER_HUNG_UP = dataclasses.replace(BOTH_IN, caller_status=CallStatus.COMPLETED)
WAITING = flow.Bridge(ROOM, caller_place=Place.ROOM)  # the partner's phone is about to ring

# what the caller hears, in pieces several steps share
GREETED = (prompts.GREETING_NAMED.format(name="Ana"), prompts.NOTICE)
PUT_THROUGH = (prompts.CONNECTING, prompts.STAR_HINT, prompts.REPEAT_HINT)
OFFER = (prompts.OFFER_MESSAGE, prompts.OFFER_MESSAGE, prompts.GOODBYE)
ASK_NUMBER = (prompts.ASK_HOME_NUMBER, prompts.ASK_HOME_NUMBER, prompts.NO_ANSWER_GOODBYE)
# an unknown caller also hears, in the Spanish voice, how to choose Spanish
OPENING = (
    prompts.ASK_HOME_NUMBER,
    prompts.SPANISH_CHOICE,
    prompts.ASK_HOME_NUMBER,
    prompts.SPANISH_CHOICE,
    prompts.NO_ANSWER_GOODBYE,
)
ASK_AGAIN = (prompts.ASK_HOME_NUMBER_AGAIN, prompts.ASK_HOME_NUMBER_AGAIN, prompts.NO_ANSWER_GOODBYE)
SPOKEN_SUPPORT = "six one seven, five five five, zero one zero zero"
CARE_TEAM = (
    prompts.SUPPORT.format(number=SPOKEN_SUPPORT),
    prompts.SUPPORT_AGAIN.format(number=SPOKEN_SUPPORT),
)
MENU = (prompts.MENU_MESSAGE, prompts.MENU_BACK) * 2
NURSE_MENU = (prompts.MENU_MESSAGE, prompts.MENU_BACK, prompts.MENU_NURSE) * 2
WHISPERED = (
    prompts.WHISPER,
    prompts.NOTICE,
    prompts.WHISPER_ASK,
    prompts.WHISPER_ASK_AGAIN,
    prompts.WHISPER_DECLINED,
)
REMINDED = (
    prompts.REMINDER_GREETING.format(name="Ana"),
    prompts.REMINDER,
    prompts.REMINDER_ASK,
    prompts.REMINDER_ASK,
    prompts.REMINDER_LATER,
)

# the verbs, pauses left out
ASKED = ("Gather", "Gather", "Say", "Hangup")
ASKED_THEN_ON = ("Gather", "Gather", "Redirect")
GOODBYE = ("Say", "Hangup")

HEARD_NOTICE = NoticePlayed(prompts.NOTICE_VERSION)
SPEAKS_EN = Speaks(Leg.CALLER, Language.EN)
PARTNER_HEARD = (Speaks(Leg.PARTNER, Language.EN), NoticePlayed(prompts.NOTICE_VERSION, Leg.PARTNER))
ANA_IN_PAIR = Identified(1, PAIR)
BRIDGED = (ANA_IN_PAIR, SPEAKS_EN, HEARD_NOTICE, BridgeStarted(2, ROOM), RingPartner(2, ROOM))
CALLER, PARTNER = Leg.CALLER, Leg.PARTNER


@dataclass(frozen=True)
class Heard:
    says: tuple[str, ...]
    verbs: tuple[str, ...]
    effects: tuple[Effect, ...]


def heard(step: Step) -> Heard:
    root = ET.fromstring(str(step))
    assert root.tag == "Response"
    says = tuple(" ".join("".join(say.itertext()).split()) for say in root.iter("Say"))
    verbs = tuple(verb.tag for verb in root if verb.tag != "Pause")
    return Heard(says, verbs, step.effects)


def case(
    id_: str, step: Callable[[], Step], says: tuple[str, ...], verbs: tuple[str, ...], *effects: Effect
) -> ParameterSet:
    """One row of the table: the id reads as a sentence in the test's name."""
    return pytest.param(step, Heard(says, verbs, tuple(effects)), id=id_)


STEPS = [
    # ------------------------------------------------------------ 1. inbound
    case(
        "inbound: a known caller ID is greeted, hears the notice and is put through",
        lambda: flow.inbound(PAIRED, LINE, room=ROOM),
        GREETED + PUT_THROUGH,
        ("Say", "Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "inbound: a known caller ID is put through even from a locked-out line",
        lambda: flow.inbound(PAIRED, LINE, room=ROOM, locked_out=True),
        GREETED + PUT_THROUGH,
        ("Say", "Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "inbound: an unknown caller ID is greeted, asked for the home number twice, then goodbye",
        lambda: flow.inbound(None, LINE, room=ROOM),
        (prompts.GREETING, *OPENING),
        ("Say", *ASKED),
    ),
    case(
        "inbound: an unknown caller ID on a locked-out line is told kindly, with the care team's number",
        lambda: flow.inbound(None, LINE, room=ROOM, locked_out=True),
        (prompts.LOCKED_OUT, *CARE_TEAM, prompts.JUST_GOODBYE),
        ("Say", "Say", "Say", "Say", "Hangup"),
    ),
    case(
        "inbound: without a care-team number the locked-out line hears no number",
        lambda: flow.inbound(None, NO_SUPPORT, room=ROOM, locked_out=True),
        (prompts.LOCKED_OUT, prompts.JUST_GOODBYE),
        ("Say", "Say", "Hangup"),
    ),
    # ------------------------------------------------------------ 2. identify
    case(
        "identify: a keyed number that is found is greeted and put through",
        lambda: flow.identify(PAIRED, LINE, room=ROOM, tries_before=1, locked_out=False),
        GREETED + PUT_THROUGH,
        ("Say", "Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "identify: a first wrong number is said not found and asked again",
        lambda: flow.identify(None, LINE, room=ROOM, tries_before=0, locked_out=False),
        (prompts.NUMBER_NOT_FOUND, *ASK_AGAIN),
        ("Say", *ASKED),
        WrongNumber(),
    ),
    case(
        "identify: a second wrong number is asked once more",
        lambda: flow.identify(None, LINE, room=ROOM, tries_before=1, locked_out=False),
        (prompts.NUMBER_NOT_FOUND, *ASK_AGAIN),
        ("Say", *ASKED),
        WrongNumber(),
    ),
    case(
        "identify: a third wrong number is sent to the care team, its number said twice",
        lambda: flow.identify(None, LINE, room=ROOM, tries_before=2, locked_out=False),
        (prompts.NUMBER_GIVE_UP, *CARE_TEAM, prompts.JUST_GOODBYE),
        ("Say", "Say", "Say", "Say", "Hangup"),
        WrongNumber(),
    ),
    case(
        "identify: a locked-out line is told kindly, whatever number was keyed",
        lambda: flow.identify(PAIRED, LINE, room=ROOM, tries_before=0, locked_out=True),
        (prompts.LOCKED_OUT, *CARE_TEAM, prompts.JUST_GOODBYE),
        ("Say", "Say", "Say", "Say", "Hangup"),
    ),
    # ------------------------------------------------------------ 3. connect
    case(
        "connect: a caller with no name on file is greeted without one",
        lambda: flow.connect(NAMELESS, LINE, room=ROOM),
        (prompts.GREETING, prompts.NOTICE, *PUT_THROUGH),
        ("Say", "Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "connect: without a greeting the caller hears the notice first",
        lambda: flow.connect(PAIRED, LINE, room=ROOM, greet=False),
        (prompts.NOTICE, *PUT_THROUGH),
        ("Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "connect: one missed call from the partner is mentioned",
        lambda: flow.connect(MISSED_ONCE, LINE, room=ROOM),
        (GREETED[0], prompts.MISSED_ONCE, prompts.NOTICE, *PUT_THROUGH),
        ("Say", "Say", "Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "connect: several missed calls from the partner are counted",
        lambda: flow.connect(MISSED_THRICE, LINE, room=ROOM),
        (GREETED[0], prompts.MISSED_MANY.format(count=3), prompts.NOTICE, *PUT_THROUGH),
        ("Say", "Say", "Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "connect: a caller without a pair is told so, hears the care number twice, may leave a message",
        lambda: flow.connect(UNPAIRED, LINE, room=ROOM),
        (*GREETED, prompts.NOT_PAIRED, *CARE_TEAM, *OFFER),
        ("Say", "Say", "Say", "Say", "Say", *ASKED),
        Identified(1, None),
        SPEAKS_EN,
        HEARD_NOTICE,
    ),
    case(
        "connect: a caller whose partner cannot be called is told there is no partner",
        lambda: flow.connect(PARTNER_GONE, NO_SUPPORT, room=ROOM),
        (*GREETED, prompts.NOT_PAIRED, *OFFER),
        ("Say", "Say", "Say", *ASKED),
        ANA_IN_PAIR,
        SPEAKS_EN,
        HEARD_NOTICE,
    ),
    case(
        "connect: a partner in quiet hours is not rung; the caller hears when, in their own time",
        lambda: flow.connect(PARTNER_ASLEEP, LINE, room=ROOM),
        (*GREETED, prompts.PARTNER_QUIET.format(when="tomorrow after 10 in the morning"), *OFFER),
        ("Say", "Say", "Say", *ASKED),
        ANA_IN_PAIR,
        SPEAKS_EN,
        HEARD_NOTICE,
        PartnerInQuietHours(2),
    ),
    case(
        "connect: a partner already on a Peerline call is not rung; the caller hears so",
        lambda: flow.connect(PARTNER_BUSY, LINE, room=ROOM),
        (*GREETED, prompts.PARTNER_BUSY, *OFFER),
        ("Say", "Say", "Say", *ASKED),
        ANA_IN_PAIR,
        SPEAKS_EN,
        HEARD_NOTICE,
        PartnerOnAnotherCall(2),
    ),
    # ------------------------------------------------------------ 4. hold
    case(
        "hold: one alone in the room hears a short line between pauses, then the same again",
        lambda: flow.hold(LINE),
        (prompts.HOLD,),
        ("Say", "Redirect"),
    ),
    # ------------------------------------------------------------ 5. whisper
    case(
        "whisper: the partner hears who calls, the notice, press 1, and once more with how to decline",
        lambda: flow.whisper(WAITING, AnsweredBy.HUMAN, LINE),
        WHISPERED,
        ("Say", "Say", *ASKED),
        Moved(PARTNER, Place.WHISPER),
        *PARTNER_HEARD,
    ),
    case(
        "whisper: without a machine-detection result a person is assumed",
        lambda: flow.whisper(WAITING, None, LINE),
        WHISPERED,
        ("Say", "Say", *ASKED),
        Moved(PARTNER, Place.WHISPER),
        *PARTNER_HEARD,
    ),
    *[
        case(
            f"whisper: a {answered_by.replace('_', ' ')} hears nothing at all",
            lambda answered_by=answered_by: flow.whisper(WAITING, answered_by, LINE),
            (),
            ("Hangup",),
            MachineAnswered(PARTNER, answered_by),
        )
        for answered_by in AnsweredBy
        if answered_by.is_machine
    ],
    case(
        "whisper: an 'unknown' from machine detection hears no name until a key shows a person",
        lambda: flow.whisper(WAITING, AnsweredBy.UNKNOWN, LINE),
        (prompts.CHECK_GREETING, prompts.CHECK_ASK, prompts.CHECK_ASK, prompts.JUST_GOODBYE),
        ("Say", *ASKED),
    ),
    case(
        "whisper: after that key the partner hears the whisper",
        lambda: flow.whisper(WAITING, AnsweredBy.UNKNOWN, LINE, person=True),
        WHISPERED,
        ("Say", "Say", *ASKED),
        Moved(PARTNER, Place.WHISPER),
        *PARTNER_HEARD,
    ),
    case(
        "whisper: a caller who has hung up meanwhile is said gone, and the partner let go",
        lambda: flow.whisper(CALLER_HUNG_UP, AnsweredBy.HUMAN, LINE),
        (prompts.CALLER_GONE,),
        GOODBYE,
        Moved(PARTNER, Place.DONE),
    ),
    case(
        "whisper answer: 1 accepts; the partner hears about star and joins the room",
        lambda: flow.whisper_answer("1", WAITING, LINE),
        (prompts.STAR_HINT,),
        ("Say", "Dial"),
        PartnerAccepted(NOW),
        Moved(PARTNER, Place.ROOM),
    ),
    case(
        "whisper answer: 1 after the caller has hung up is told so",
        lambda: flow.whisper_answer("1", CALLER_HUNG_UP, LINE),
        (prompts.CALLER_GONE,),
        GOODBYE,
        Moved(PARTNER, Place.DONE),
    ),
    case(
        "whisper answer: a wrong key is asked once more, with how to decline",
        lambda: flow.whisper_answer("2", WAITING, LINE),
        (prompts.WHISPER_ASK_AGAIN, prompts.WHISPER_DECLINED),
        ("Gather", "Say", "Hangup"),
    ),
    case(
        "whisper answer: a wrong key the second time lets the call go politely",
        lambda: flow.whisper_answer("2", WAITING, LINE, again=True),
        (prompts.WHISPER_DECLINED,),
        GOODBYE,
    ),
    # ------------------------------------------------------------ 6. stepped out
    case(
        "stepped out: the caller's star: the menu; the partner in the room is held",
        lambda: flow.stepped_out(CALLER, BOTH_IN, LINE, hung_up=False),
        MENU,
        ASKED_THEN_ON,
        SteppedOut(CALLER),
        Moved(CALLER, Place.AWAY),
        Tell(PARTNER, StepName.PARTNER_AWAY),
    ),
    case(
        "stepped out: the partner's star: the menu; the caller in the room is held",
        lambda: flow.stepped_out(PARTNER, BOTH_IN, LINE, hung_up=False),
        MENU,
        ASKED_THEN_ON,
        SteppedOut(PARTNER),
        Moved(PARTNER, Place.AWAY),
        Tell(CALLER, StepName.PARTNER_AWAY),
    ),
    case(
        "stepped out: a partner already out of the room is not moved",
        lambda: flow.stepped_out(CALLER, PARTNER_AWAY, LINE, hung_up=False),
        MENU,
        ASKED_THEN_ON,
        SteppedOut(CALLER),
        Moved(CALLER, Place.AWAY),
    ),
    case(
        "stepped out: while the care team's line is staffed, 0 for a nurse is offered",
        lambda: flow.stepped_out(CALLER, BOTH_IN, STAFFED, hung_up=False),
        NURSE_MENU,
        ASKED_THEN_ON,
        SteppedOut(CALLER),
        Moved(CALLER, Place.AWAY),
        Tell(PARTNER, StepName.PARTNER_AWAY),
    ),
    case(
        "stepped out: when the other has hung up, the one who stepped out is told and offered a message",
        lambda: flow.stepped_out(CALLER, PARTNER_HUNG_UP, LINE, hung_up=False),
        (prompts.PARTNER_HUNG_UP, *OFFER),
        ("Say", *ASKED),
        SteppedOut(CALLER),
        Moved(CALLER, Place.AWAY),
        Moved(CALLER, Place.DONE),
    ),
    case(
        "stepped out: a leg that hung up hears nothing; its final status tells the rest",
        lambda: flow.stepped_out(CALLER, BOTH_IN, LINE, hung_up=True),
        (),
        (),
    ),
    case(
        "away menu: the menu again",
        lambda: flow.away_menu(PARTNER, CALLER_AWAY, LINE),
        MENU,
        ASKED_THEN_ON,
    ),
    # ------------------------------------------------------------ 7. away
    case(
        "away: 1 records a message; an empty one is said so and the menu comes back",
        lambda: flow.away("1", CALLER, PARTNER_AWAY, LINE),
        (prompts.RECORD_PROMPT, prompts.NO_MESSAGE),
        ("Say", "Record", "Say", "Redirect"),
    ),
    case(
        "away: 2 goes back to the partner",
        lambda: flow.away("2", CALLER, BOTH_IN, LINE),
        (),
        ("Dial",),
        Moved(CALLER, Place.ROOM),
    ),
    case(
        "away: silence goes back to the partner, and says so",
        lambda: flow.away("", PARTNER, BOTH_IN, LINE),
        (prompts.BACK_TO_PARTNER,),
        ("Say", "Dial"),
        Moved(PARTNER, Place.ROOM),
    ),
    case(
        "away: back to a partner who has hung up is told so and offered a message",
        lambda: flow.away("2", CALLER, PARTNER_HUNG_UP, LINE),
        (prompts.PARTNER_HUNG_UP, *OFFER),
        ("Say", *ASKED),
        Moved(CALLER, Place.DONE),
    ),
    case(
        "away: 0 while the line is staffed puts the caller through to a nurse",
        lambda: flow.away("0", CALLER, BOTH_IN, STAFFED),
        (prompts.NURSE_CONNECTING,),
        ("Say", "Dial"),
    ),
    case(
        "away: 0 while nobody staffs the line is the menu again",
        lambda: flow.away("0", CALLER, BOTH_IN, LINE),
        MENU,
        ASKED_THEN_ON,
    ),
    case(
        "away: any other key is the menu again",
        lambda: flow.away("7", CALLER, BOTH_IN, LINE),
        MENU,
        ASKED_THEN_ON,
    ),
    # ------------------------------------------------------------ 8. told
    case(
        "partner away: the one left in the room is told, and waits in it again",
        lambda: flow.partner_away(CALLER, PARTNER_AWAY, LINE),
        (prompts.PARTNER_AWAY,),
        ("Say", "Dial"),
        Moved(CALLER, Place.ROOM),
    ),
    case(
        "partner away: if the other has hung up meanwhile, that is said instead",
        lambda: flow.partner_away(CALLER, PARTNER_HUNG_UP, LINE),
        (prompts.PARTNER_HUNG_UP, *OFFER),
        ("Say", *ASKED),
        Moved(CALLER, Place.DONE),
    ),
    case(
        "partner gone: the one still on the line hears it at once, and is offered a message",
        lambda: flow.partner_gone(PARTNER, LINE),
        (prompts.PARTNER_HUNG_UP, *OFFER),
        ("Say", *ASKED),
        Moved(PARTNER, Place.DONE),
    ),
    case(
        "let go: a leg whose room no call has is let go politely",
        lambda: flow.let_go(LINE),
        (prompts.WHISPER_DECLINED,),
        GOODBYE,
    ),
    case(
        "partner unreached: the waiting caller is told kindly, and offered a message",
        lambda: flow.partner_unreached(LINE),
        (prompts.PARTNER_UNREACHED, *OFFER),
        ("Say", *ASKED),
        Moved(CALLER, Place.DONE),
    ),
    # ------------------------------------------------------------ 9. message
    case(
        "message menu: 1 records a message; nothing recorded is not thanked for",
        lambda: flow.message_menu("1", LINE),
        (prompts.RECORD_PROMPT, prompts.NO_MESSAGE, prompts.GOODBYE),
        ("Say", "Record", "Say", "Say", "Hangup"),
    ),
    case(
        "message menu: any other key says goodbye",
        lambda: flow.message_menu("7", LINE),
        (prompts.GOODBYE,),
        GOODBYE,
    ),
    case(
        "message done: the caller is thanked and hung up on",
        lambda: flow.message_done(LINE),
        (prompts.MESSAGE_THANKS, prompts.GOODBYE),
        ("Say", "Say", "Hangup"),
    ),
    case(
        "message done: one who stepped out is thanked and offered the way back",
        lambda: flow.message_done(LINE, leg=CALLER, bridge=CALLER_AWAY),
        (prompts.MESSAGE_THANKS, prompts.MENU_BACK, prompts.MENU_BACK),
        ("Say", *ASKED_THEN_ON),
    ),
    case(
        "message done: one whose partner hung up meanwhile is told, then goodbye",
        lambda: flow.message_done(LINE, leg=CALLER, bridge=PARTNER_HUNG_UP),
        (prompts.MESSAGE_THANKS, prompts.PARTNER_HUNG_UP, prompts.GOODBYE),
        ("Say", "Say", "Say", "Hangup"),
        Moved(CALLER, Place.DONE),
    ),
    # ------------------------------------------------------------ 10. reminder
    case(
        "reminder: a person hears their name, the reminder, and press 1, twice",
        lambda: flow.reminder(ANA, AnsweredBy.HUMAN, LINE),
        REMINDED,
        ("Say", "Say", *ASKED),
        SPEAKS_EN,
    ),
    case(
        "reminder: without a machine-detection result a person is assumed",
        lambda: flow.reminder(ANA, None, LINE),
        REMINDED,
        ("Say", "Say", *ASKED),
        SPEAKS_EN,
    ),
    case(
        "reminder: an 'unknown' hears no name, is asked for a key; silence goes on to the machine's words",
        lambda: flow.reminder(ANA, AnsweredBy.UNKNOWN, LINE),
        (prompts.CHECK_GREETING, prompts.REMINDER_CHECK_ASK, prompts.REMINDER_CHECK_ASK),
        ("Say", *ASKED_THEN_ON),
    ),
    case(
        "reminder: after that key, the person hears the reminder",
        lambda: flow.reminder(ANA, AnsweredBy.UNKNOWN, LINE, confirmed=True),
        REMINDED,
        ("Say", "Say", *ASKED),
        SPEAKS_EN,
    ),
    *[
        case(
            f"reminder: a {answered_by.replace('_', ' ')} hears a message that names no one",
            lambda answered_by=answered_by: flow.reminder(ANA, answered_by, LINE),
            (prompts.REMINDER_MACHINE,),
            GOODBYE,
            MachineAnswered(),
        )
        for answered_by in AnsweredBy
        if answered_by.is_machine
    ],
    case(
        "reminder: a person we cannot place is only thanked",
        lambda: flow.reminder(None, AnsweredBy.HUMAN, LINE),
        (prompts.GOODBYE,),
        GOODBYE,
    ),
    case(
        "reminder unconfirmed: no key was pressed: the machine's words, naming no one",
        lambda: flow.reminder_unconfirmed(LINE),
        (prompts.REMINDER_MACHINE,),
        GOODBYE,
        MachineAnswered(),
    ),
    case(
        "reminder answer: 1 puts the reminded person through without a second greeting",
        lambda: flow.reminder_answer("1", PAIRED, LINE, room=ROOM),
        (prompts.NOTICE, *PUT_THROUGH),
        ("Say", "Say", "Say", "Say", "Dial"),
        *BRIDGED,
    ),
    case(
        "reminder answer: 1 when the partner is on another call is told so",
        lambda: flow.reminder_answer("1", PARTNER_BUSY, LINE, room=ROOM),
        (prompts.NOTICE, prompts.PARTNER_BUSY, *OFFER),
        ("Say", "Say", *ASKED),
        ANA_IN_PAIR,
        SPEAKS_EN,
        HEARD_NOTICE,
        PartnerOnAnotherCall(2),
    ),
    case(
        "reminder answer: any other key asks them to call soon",
        lambda: flow.reminder_answer("2", PAIRED, LINE, room=ROOM),
        (prompts.REMINDER_LATER,),
        GOODBYE,
    ),
    case(
        "reminder answer: 1 from a person we cannot place asks them to call soon",
        lambda: flow.reminder_answer("1", None, LINE, room=ROOM),
        (prompts.REMINDER_LATER,),
        GOODBYE,
    ),
    # ------------------------------------------------------------ 13. trouble
    case(
        "lost: a request that fits no call apologises and still offers the care team",
        lambda: flow.lost(LINE),
        (prompts.LOST, *OFFER),
        ("Say", *ASKED),
    ),
    case(
        "apology: with a support number, the caller hears it twice, as they would say it",
        lambda: flow.apology(SUPPORT),
        (prompts.APOLOGY, *CARE_TEAM),
        ("Say", "Say", "Say", "Hangup"),
    ),
    case(
        "apology: without a support number, only the apology",
        lambda: flow.apology(None),
        (prompts.APOLOGY,),
        GOODBYE,
    ),
    case(
        "fallback apology: the number's fallback reads it digit by digit, as it always has",
        lambda: flow.fallback_apology("+18005550177"),
        (prompts.APOLOGY, prompts.SUPPORT.format(number="1, 8, 0, 0, 5, 5, 5, 0, 1, 7, 7")),
        ("Say", "Say", "Hangup"),
    ),
]


@pytest.mark.parametrize(("step", "expected"), STEPS)
def test_step(step: Callable[[], Step], expected: Heard) -> None:
    assert heard(step()) == expected


# ---------------------------------------------------------------- the verbs' own settings


def _with_lang(url: str, lang: str = "en") -> str:
    """Every URL a step writes carries its listener's language last."""
    return f"{url}{'&' if '?' in url else '?'}lang={lang}"


def _only(step: Step, tag: str) -> ET.Element:
    (element,) = ET.fromstring(str(step)).iter(tag)
    return element


def _room_dial_of(step: Step) -> tuple[ET.Element, ET.Element]:
    return _only(step, "Dial"), _only(step, "Conference")


ROOM_DIAL = {
    "hangupOnStar": "true",
    "action": f"{BASE}/twilio/voice/stepped-out?room={ROOM}&lang=en",
    "method": "POST",
}
CONFERENCE = {
    "beep": "false",
    "startConferenceOnEnter": "true",
    "endConferenceOnExit": "false",
    "waitUrl": f"{BASE}/twilio/voice/hold?lang=en",
    "waitMethod": "POST",
    "statusCallback": f"{BASE}/twilio/conference",
    "statusCallbackEvent": "start end join leave",
    "statusCallbackMethod": "POST",
}


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(lambda: flow.connect(PAIRED, LINE, room=ROOM), id="the caller"),
        pytest.param(lambda: flow.whisper_answer("1", WAITING, LINE), id="the partner who pressed 1"),
        pytest.param(lambda: flow.away("2", CALLER, BOTH_IN, LINE), id="one back from the menu"),
        pytest.param(
            lambda: flow.partner_away(PARTNER, CALLER_AWAY, LINE), id="one held while the other is out"
        ),
    ],
)
def test_everyone_joins_the_same_opaque_room_through_a_dial_of_their_own(step: Callable[[], Step]) -> None:
    dial, conference = _room_dial_of(step())
    assert dial.attrib == ROOM_DIAL
    assert conference.attrib == CONFERENCE
    assert conference.text == ROOM


def test_a_room_name_says_nothing_about_who_is_in_it() -> None:
    from app.services.calls import new_room

    names = {new_room() for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert re.fullmatch(r"room-[0-9a-f]{24}", name)


def test_nothing_the_partner_hears_or_is_sent_holds_a_number() -> None:
    # the fictional numbers of participants; the flow is never even given one
    digits = re.compile(r"555\D{0,3}01\d\d")
    partner_steps = [
        flow.whisper(WAITING, AnsweredBy.HUMAN, LINE),
        flow.whisper(WAITING, AnsweredBy.UNKNOWN, LINE),
        flow.whisper_answer("1", WAITING, LINE),
        flow.whisper_answer("5", WAITING, LINE),
        flow.stepped_out(PARTNER, BOTH_IN, LINE, hung_up=False),
        flow.away("2", PARTNER, BOTH_IN, LINE),
        flow.partner_gone(PARTNER, NO_SUPPORT),
        flow.message_done(LINE, leg=PARTNER, bridge=PARTNER_AWAY),
    ]
    for step in partner_steps:
        assert not digits.search(str(step)), str(step)


def test_the_nurse_is_rung_from_the_programme_number_and_the_menu_comes_back_after() -> None:
    step = flow.away("0", CALLER, BOTH_IN, STAFFED)
    dial, number = _only(step, "Dial"), _only(step, "Number")
    assert dial.attrib == {
        "callerId": PROGRAMME,
        "timeout": str(flow.NURSE_RING_SECONDS),
        "action": f"{BASE}/twilio/voice/away-menu?room={ROOM}&lang=en",
        "method": "POST",
    }
    assert number.text == NURSE


def test_a_message_is_recorded_up_to_three_minutes_and_reported_when_complete() -> None:
    record = _only(flow.message_menu("1", LINE), "Record")
    assert record.attrib == {
        "maxLength": str(flow.MESSAGE_MAX_SECONDS),
        "finishOnKey": "#",
        "playBeep": "true",
        "action": f"{BASE}/twilio/voice/message-done?lang=en",
        "method": "POST",
        "recordingStatusCallback": f"{BASE}/twilio/recording",
        "recordingStatusCallbackMethod": "POST",
    }
    away = _only(flow.away("1", PARTNER, BOTH_IN, LINE), "Record")
    assert away.get("action") == f"{BASE}/twilio/voice/message-done?room={ROOM}&lang=en"


def test_hold_asks_for_itself_again_so_the_line_is_never_silent_for_long() -> None:
    redirect = _only(flow.hold(LINE), "Redirect")
    assert (redirect.text, redirect.get("method")) == (f"{BASE}/twilio/voice/hold?lang=en", "POST")
    assert not list(ET.fromstring(str(flow.hold(LINE))).iter("Play"))  # no music fetched from elsewhere


@pytest.mark.parametrize(
    ("step", "actions", "finish"),
    [
        pytest.param(
            lambda: flow.inbound(None, LINE, room=ROOM),
            ["identify"] * 2,
            "#",
            id="the home number ends with #",
        ),
        pytest.param(
            lambda: flow.whisper(WAITING, AnsweredBy.HUMAN, LINE),
            [f"whisper-answer?room={ROOM}", f"whisper-answer?room={ROOM}&again=1"],
            None,
            id="the whisper's second ask is told apart",
        ),
        pytest.param(
            lambda: flow.whisper(WAITING, AnsweredBy.UNKNOWN, LINE),
            [f"whisper?room={ROOM}&person=1"] * 2,
            None,
            id="a key after the neutral greeting shows a person",
        ),
        pytest.param(
            lambda: flow.stepped_out(CALLER, BOTH_IN, LINE, hung_up=False),
            [f"away?room={ROOM}"] * 2,
            None,
            id="the stepped-out menu takes one key",
        ),
        pytest.param(lambda: flow.lost(LINE), ["message"] * 2, None, id="the message offer takes one key"),
        pytest.param(
            lambda: flow.reminder(ANA, AnsweredBy.HUMAN, LINE),
            ["reminder-answer"] * 2,
            None,
            id="so does a reminder",
        ),
        pytest.param(
            lambda: flow.reminder(ANA, AnsweredBy.UNKNOWN, LINE),
            ["reminder?person=1"] * 2,
            None,
            id="and its check for a person",
        ),
    ],
)
def test_each_question_sends_the_keys_to_its_own_step(
    step: Callable[[], Step], actions: list[str], finish: str | None
) -> None:
    gathers = list(ET.fromstring(str(step())).iter("Gather"))
    assert [g.get("action") for g in gathers] == [_with_lang(f"{BASE}/twilio/voice/{a}") for a in actions]
    for gather in gathers:
        assert gather.get("input") == "dtmf"
        assert gather.get("finishOnKey") == finish
        assert gather.get("numDigits") == (None if finish else "1")


@pytest.mark.parametrize(
    ("step", "then"),
    [
        pytest.param(
            lambda: flow.stepped_out(CALLER, BOTH_IN, LINE, hung_up=False),
            f"away?room={ROOM}",
            id="menu: back",
        ),
        pytest.param(
            lambda: flow.message_done(LINE, leg=CALLER, bridge=CALLER_AWAY),
            f"away?room={ROOM}",
            id="after a message: back",
        ),
        pytest.param(
            lambda: flow.away("1", CALLER, BOTH_IN, LINE),
            f"away-menu?room={ROOM}",
            id="empty recording: the menu",
        ),
        pytest.param(
            lambda: flow.reminder(ANA, AnsweredBy.UNKNOWN, LINE),
            "reminder-unconfirmed",
            id="no key: a machine",
        ),
    ],
)
def test_silence_goes_on_to_a_step_of_its_own(step: Callable[[], Step], then: str) -> None:
    redirect = _only(step(), "Redirect")
    assert redirect.text == _with_lang(f"{BASE}/twilio/voice/{then}")


def _only_prosody(say: ET.Element) -> ET.Element:
    (prosody,) = say.iter("prosody")
    return prosody


def test_every_say_is_slow_and_in_the_callers_language() -> None:
    for param in STEPS:
        (step, _expected) = param.values
        for say in ET.fromstring(str(step())).iter("Say"):  # type: ignore[operator]
            spanish = "".join(say.itertext()).strip() == prompts.SPANISH_CHOICE
            voice = VOICES[Language.ES if spanish else Language.EN]
            assert say.get("language") == voice.locale and say.get("voice") == voice.name
            assert _only_prosody(say).get("rate") == RATE


def test_a_step_is_built_afresh_each_time_and_cannot_be_changed() -> None:
    first = flow.identify(None, LINE, room=ROOM, tries_before=2, locked_out=False)
    second = flow.inbound(None, LINE, room=ROOM)
    assert first.effects == (WrongNumber(),) and second.effects == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.effects = ()  # type: ignore[misc]
    assert flow.message_done(LINE).twiml is not flow.message_done(LINE).twiml


# ---------------------------------------------------------------- the care team's number


@pytest.mark.parametrize(
    ("number", "region", "spoken"),
    [
        pytest.param(
            "+16175550100",
            "US",
            "six one seven, five five five, zero one zero zero",
            id="domestic: no country code",
        ),
        pytest.param(
            "+18005550177",
            "CA",
            "eight zero zero, five five five, zero one seven seven",
            id="one plan, one country code",
        ),
        pytest.param(
            "+16175550100",
            "GB",
            "plus one, six one seven, five five five, zero one zero zero",
            id="from abroad: the country code first",
        ),
        pytest.param(
            "+442079460958",
            "GB",
            "zero two zero, seven nine four six, zero nine five eight",
            id="grouped as that country writes it",
        ),
    ],
)
def test_the_care_teams_number_is_said_as_people_say_it(number: str, region: str, spoken: str) -> None:
    assert spoken_number(number, region) == spoken


# ---------------------------------------------------------------- 11. a leg ended


@pytest.mark.parametrize(
    ("ended", "bridge", "effects"),
    [
        pytest.param(
            PARTNER,
            BOTH_IN,
            (Tell(CALLER, StepName.PARTNER_GONE),),
            id="partner hung up: the caller in the room is told",
        ),
        pytest.param(
            CALLER,
            BOTH_IN,
            (Tell(PARTNER, StepName.PARTNER_GONE),),
            id="caller hung up: the partner in the room is told",
        ),
        pytest.param(
            PARTNER,
            WAITING,
            (Tell(CALLER, StepName.PARTNER_UNREACHED),),
            id="the partner never accepted: the waiting caller hears so",
        ),
        pytest.param(PARTNER, CALLER_AWAY, (), id="one in the menu finds out when they ask to go back"),
        pytest.param(CALLER, PARTNER_AWAY, (), id="so does a partner in the menu"),
        pytest.param(
            CALLER,
            dataclasses.replace(WAITING, partner_placed=True),
            (HangUp(PARTNER),),
            id="caller hung up while the partner's phone rings: it stops ringing",
        ),
        pytest.param(
            CALLER,
            WAITING,
            (),
            id="caller hung up before the partner's leg was placed: the dialer sees to it",
        ),
        pytest.param(
            CALLER,
            dataclasses.replace(WAITING, partner_placed=True, partner_place=Place.WHISPER),
            (),
            id="caller hung up during the whisper: the partner's 1 is told",
        ),
        pytest.param(
            PARTNER,
            dataclasses.replace(BOTH_IN, caller_status=CallStatus.COMPLETED),
            (),
            id="both gone: nobody to tell",
        ),
    ],
)
def test_when_a_leg_ends_the_other_is_told_or_let_go(
    ended: Leg, bridge: flow.Bridge, effects: tuple[Effect, ...]
) -> None:
    assert flow.leg_ended(ended, bridge) == effects


# ---------------------------------------------------------------- 12. outcome: talk time

T0 = datetime(2026, 11, 17, 20, 0, tzinfo=UTC)
CA, PA = "CAcaller", "CApartner"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def join(sid: str, t: float, room: str = "CF1", seq: int | None = None) -> RoomChange:
    return RoomChange(RoomEvent.JOIN, room, sid, at(t), seq)


def leave(sid: str, t: float, room: str = "CF1", seq: int | None = None) -> RoomChange:
    return RoomChange(RoomEvent.LEAVE, room, sid, at(t), seq)


def end(t: float, room: str = "CF1") -> RoomChange:
    return RoomChange(RoomEvent.END, room, None, at(t))


@pytest.mark.parametrize(
    ("changes", "ended", "talk"),
    [
        pytest.param([], (None, None), 0, id="no callbacks yet: nothing"),
        pytest.param(
            [join(CA, 0), join(PA, 20), leave(PA, 320), leave(CA, 320)],
            (None, None),
            300,
            id="hold before the partner joined is not talk",
        ),
        pytest.param([join(CA, 0), leave(CA, 50)], (None, None), 0, id="alone in the room is not talk"),
        pytest.param(
            [join(CA, 0), join(PA, 20), leave(PA, 140), join(PA, 200), leave(PA, 260), leave(CA, 300)],
            (None, None),
            180,
            id="a partner who steps out and back: both stretches, not the detour",
        ),
        pytest.param(
            [
                join(CA, 0),
                join(PA, 10),
                leave(CA, 70),
                join(CA, 100, room="CF2"),
                leave(PA, 75),
                join(PA, 90, room="CF2"),
                leave(PA, 200, room="CF2"),
                leave(CA, 200, room="CF2"),
            ],
            (None, None),
            160,
            id="a held partner leaves and rejoins a fresh room: stretches in both rooms",
        ),
        pytest.param(
            [join(CA, 0), join(PA, 10)], (None, None), 0, id="stretches still open count nothing yet"
        ),
        pytest.param(
            [join(CA, 0), join(PA, 10), end(100)], (None, None), 90, id="the room's end closes what is open"
        ),
        pytest.param(
            [join(CA, 0), join(PA, 10)], (at(130), at(120)), 110, id="a leg's end closes its stretch"
        ),
        pytest.param(
            [leave(PA, 5), join(CA, 0), join(PA, 10), leave(CA, 70), leave(PA, 70)],
            (None, None),
            60,
            id="a leave with no join before it is ignored",
        ),
        pytest.param(
            [
                join(CA, 0, seq=1),
                join(PA, 10, seq=2),
                leave(PA, 40, seq=3),
                join(PA, 40, seq=4),
                leave(PA, 100, seq=5),
                leave(CA, 100, seq=6),
            ],
            (None, None),
            90,
            id="a leave and a join in one second are ordered by Twilio's sequence",
        ),
        pytest.param(
            [join(CA, 0), join(PA, 10), leave(PA, 40), join(PA, 40), leave(PA, 100), leave(CA, 100)],
            (None, None),
            90,
            id="without a sequence a leave goes first",
        ),
    ],
)
def test_talk_time_is_only_the_time_both_were_in_the_room(
    changes: list[RoomChange], ended: tuple[datetime | None, datetime | None], talk: int
) -> None:
    kwargs = {"caller_sid": CA, "partner_sid": PA, "caller_ended_at": ended[0], "partner_ended_at": ended[1]}
    assert flow.talk_time(changes, **kwargs) == talk  # type: ignore[arg-type]
    for shuffled in (list(reversed(changes)), changes[1::2] + changes[::2], changes + changes):
        assert flow.talk_time(shuffled, **kwargs) == talk  # type: ignore[arg-type]


def test_without_a_partner_leg_there_is_no_talk() -> None:
    assert flow.talk_time([join(CA, 0), leave(CA, 60)], caller_sid=CA, partner_sid=None) == 0


# ---------------------------------------------------------------- 12. outcome: what a call counts as


@pytest.mark.parametrize(
    ("partner_status", "outcome"),
    [
        pytest.param(None, Outcome.IN_PROGRESS, id="a partner leg not finished yet is still in progress"),
        pytest.param(CallStatus.COMPLETED, Outcome.DECLINED, id="completed without a 1 is declined"),
        pytest.param(CallStatus.BUSY, Outcome.BUSY, id="busy is busy"),
        pytest.param(CallStatus.NO_ANSWER, Outcome.NO_ANSWER, id="no-answer is no answer"),
        pytest.param(CallStatus.CANCELED, Outcome.NO_ANSWER, id="canceled is no answer"),
        pytest.param(CallStatus.FAILED, Outcome.FAILED, id="failed is failed"),
        pytest.param(CallStatus.RINGING, Outcome.IN_PROGRESS, id="a leg still ringing is in progress"),
        pytest.param(CallStatus.IN_PROGRESS, Outcome.IN_PROGRESS, id="a leg in the whisper is in progress"),
    ],
)
def test_classify_a_partner_who_did_not_accept(partner_status: CallStatus | None, outcome: Outcome) -> None:
    got = flow.classify(
        accepted=False, talk_seconds=400, partner_status=partner_status, min_contact_seconds=60
    )
    assert got == outcome


def test_a_machine_on_the_partners_leg_is_no_answer() -> None:
    got = flow.classify(
        accepted=False,
        talk_seconds=None,
        partner_status=CallStatus.COMPLETED,
        min_contact_seconds=60,
        machine=True,
    )
    assert got == Outcome.NO_ANSWER


def test_classify_covers_every_call_status() -> None:
    for status in CallStatus:
        flow.classify(accepted=False, talk_seconds=None, partner_status=status, min_contact_seconds=60)


@pytest.mark.parametrize(
    ("talk_seconds", "outcome"),
    [
        pytest.param(None, Outcome.IN_PROGRESS, id="accepted but talk not known yet"),
        pytest.param(59, Outcome.SHORT, id="accepted and under a minute is short"),
        pytest.param(60, Outcome.CONTACT, id="accepted and a full minute is a contact"),
    ],
)
def test_classify_an_accepted_call(talk_seconds: int | None, outcome: Outcome) -> None:
    got = flow.classify(
        accepted=True, talk_seconds=talk_seconds, partner_status=CallStatus.BUSY, min_contact_seconds=60
    )
    assert got == outcome


DONE = CallStatus.COMPLETED


@pytest.mark.parametrize(
    ("call", "ending"),
    [
        pytest.param(BridgedCall(accepted=True, talk_seconds=300), None, id="nothing final yet: no ending"),
        pytest.param(
            BridgedCall(accepted=True, caller_status=DONE, talk_seconds=300),
            None,
            id="the caller gone but the partner's leg not: its stretches may still be open",
        ),
        pytest.param(
            BridgedCall(accepted=True, caller_status=DONE, partner_status=DONE, talk_seconds=300),
            Ending(Outcome.CONTACT, 300),
            id="both legs ended: the talk time decides",
        ),
        pytest.param(
            BridgedCall(accepted=True, caller_status=DONE, partner_status=DONE, talk_seconds=30),
            Ending(Outcome.SHORT, 30),
            id="half a minute accepted is a short call",
        ),
        pytest.param(
            BridgedCall(accepted=False, partner_status=CallStatus.NO_ANSWER),
            Ending(Outcome.NO_ANSWER, 0),
            id="a partner leg that rang out is no answer, the caller still on the line or not",
        ),
        pytest.param(
            BridgedCall(accepted=False, partner_status=DONE, machine=True),
            Ending(Outcome.NO_ANSWER, 0, EndReason.ANSWERING_MACHINE),
            id="a machine is no answer, and said why",
        ),
        pytest.param(
            BridgedCall(accepted=False, caller_status=DONE, partner_status=DONE, talk_seconds=120),
            Ending(Outcome.DECLINED, 0),
            id="a partner who never pressed 1 declined, and no talk time is counted",
        ),
    ],
)
def test_the_ending_of_a_call_whose_partner_was_rung(call: BridgedCall, ending: Ending | None) -> None:
    assert flow.bridged_ending(call, min_contact_seconds=60) == ending


@pytest.mark.parametrize(
    ("kind", "status", "machine", "ending"),
    [
        pytest.param(
            CallKind.PEER,
            CallStatus.COMPLETED,
            False,
            Ending(Outcome.FAILED, 0, EndReason.BEFORE_DIAL),
            id="a peer call that ended before the room failed, and is no missed attempt",
        ),
        pytest.param(
            CallKind.OUTREACH,
            CallStatus.NO_ANSWER,
            False,
            Ending(Outcome.FAILED, 0, EndReason.BEFORE_DIAL),
            id="so does any call that is not a reminder",
        ),
        pytest.param(
            CallKind.REMINDER,
            CallStatus.BUSY,
            False,
            Ending(Outcome.BUSY, 0),
            id="a reminder to a busy line is busy",
        ),
        pytest.param(
            CallKind.REMINDER,
            CallStatus.FAILED,
            False,
            Ending(Outcome.FAILED, 0),
            id="a reminder that failed failed",
        ),
        pytest.param(
            CallKind.REMINDER,
            CallStatus.COMPLETED,
            False,
            Ending(Outcome.DECLINED, 0, EndReason.REMINDER_NOT_TAKEN),
            id="a reminder heard by a person who did not press 1 is declined",
        ),
        pytest.param(
            CallKind.REMINDER,
            CallStatus.COMPLETED,
            True,
            Ending(Outcome.NO_ANSWER, 0),
            id="a reminder heard by a machine is no answer",
        ),
        pytest.param(
            CallKind.REMINDER,
            CallStatus.NO_ANSWER,
            False,
            Ending(Outcome.NO_ANSWER, 0),
            id="a reminder nobody picked up is no answer",
        ),
        pytest.param(
            CallKind.REMINDER,
            CallStatus.CANCELED,
            False,
            Ending(Outcome.NO_ANSWER, 0),
            id="a cancelled reminder is no answer",
        ),
    ],
)
def test_the_ending_of_a_call_nobody_was_rung_for(
    kind: CallKind, status: CallStatus, machine: bool, ending: Ending
) -> None:
    assert flow.unbridged_ending(kind, status, heard_by_machine=machine) == ending


@pytest.mark.parametrize(
    ("failures", "locked"),
    [
        pytest.param(0, False, id="no wrong numbers: open"),
        pytest.param(flow.LOCKOUT_FAILURES - 1, False, id="one short of the limit: open"),
        pytest.param(flow.LOCKOUT_FAILURES, True, id="at the limit: locked"),
        pytest.param(flow.LOCKOUT_FAILURES + 5, True, id="past the limit: locked"),
    ],
)
def test_a_caller_id_is_locked_out_after_six_wrong_numbers(failures: int, locked: bool) -> None:
    assert flow.is_locked_out(failures) is locked
    assert flow.LOCKOUT_FAILURES == 6 and flow.LOCKOUT_WINDOW.total_seconds() == 3600


def test_a_missed_call_is_one_that_did_not_reach_the_person_not_one_they_declined() -> None:
    assert Outcome.DECLINED not in flow.MISSED
    assert set(flow.MISSED) == {Outcome.NO_ANSWER, Outcome.BUSY, Outcome.QUIET_HOURS, Outcome.FAILED}
