"""The words ivr and app share: every fixed value a call, a reminder or Twilio can take.

Each vocabulary is a StrEnum, so a typo is a type error rather than a silent mismatch,
while the stored and transmitted text stays exactly the value.
"""

from __future__ import annotations

import enum


class ParticipantStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class CallKind(enum.StrEnum):
    PEER = "peer"
    REMINDER = "reminder"
    OUTREACH = "outreach"


class Outcome(enum.StrEnum):
    """What a call counts as; the API's `outcome` vocabulary."""

    CONTACT = "contact"
    SHORT = "short"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    QUIET_HOURS = "quiet_hours"
    IN_PROGRESS = "in_progress"


class EndReason(enum.StrEnum):
    """Why a call ended, when its outcome alone does not say."""

    ANSWERING_MACHINE = "answering machine"
    BEFORE_DIAL = "ended before the partner was dialled"
    REMINDER_NOT_TAKEN = "heard the reminder; did not ask to be connected"
    PARTNER_ON_ANOTHER_CALL = "the partner was on another call"
    PARTNER_LEG_NOT_PLACED = "the partner's phone could not be rung"


class ReminderState(enum.StrEnum):
    """pending -> placing -> calling -> answered | machine | unanswered; or one of the others."""

    PENDING = "pending"
    PLACING = "placing"
    CALLING = "calling"
    ANSWERED = "answered"
    MACHINE = "machine"
    UNANSWERED = "unanswered"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    # Twilio may or may not have placed the call: never re-sent blindly
    UNKNOWN = "unknown"


class CallStatus(enum.StrEnum):
    """Twilio's CallStatus (and DialCallStatus, which uses a subset of the same words)."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def rank(self) -> int:
        """How far along a call is: a callback never moves a call to a lower rank."""
        return _RANK[self]


TERMINAL = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED}
)
_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.ANSWERED: 3,
    **dict.fromkeys(TERMINAL, 4),
}

# The status callbacks asked for, on a dialled leg and on a call placed through the REST API.
STATUS_EVENTS = (CallStatus.INITIATED, CallStatus.RINGING, CallStatus.ANSWERED, CallStatus.COMPLETED)


class AnsweredBy(enum.StrEnum):
    """Twilio's answering-machine detection result.

    `unknown` (detection timed out, or silence) is not known to be a person: for privacy
    it hears nothing that names anyone until a key press shows someone is there.
    """

    HUMAN = "human"
    MACHINE_START = "machine_start"
    MACHINE_END_BEEP = "machine_end_beep"
    MACHINE_END_SILENCE = "machine_end_silence"
    MACHINE_END_OTHER = "machine_end_other"
    FAX = "fax"
    UNKNOWN = "unknown"

    @property
    def is_machine(self) -> bool:
        return self not in (AnsweredBy.HUMAN, AnsweredBy.UNKNOWN)

    @property
    def is_person(self) -> bool:
        return self == AnsweredBy.HUMAN


class RecordingStatus(enum.StrEnum):
    """Twilio's RecordingStatus: a recording exists once it is `completed`."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"
    FAILED = "failed"


class StepName(enum.StrEnum):
    """The steps of a call that Twilio asks for by URL: /twilio/voice/{step}."""

    IDENTIFY = "identify"
    HOLD = "hold"
    WHISPER = "whisper"
    WHISPER_ANSWER = "whisper-answer"
    STEPPED_OUT = "stepped-out"
    AWAY_MENU = "away-menu"
    AWAY = "away"
    PARTNER_AWAY = "partner-away"
    PARTNER_GONE = "partner-gone"
    PARTNER_UNREACHED = "partner-unreached"
    MESSAGE = "message"
    MESSAGE_DONE = "message-done"
    REMINDER = "reminder"
    REMINDER_ANSWER = "reminder-answer"
    REMINDER_UNCONFIRMED = "reminder-unconfirmed"


class Leg(enum.StrEnum):
    """The two legs of a bridged call: the one who called (or was reminded), and the partner."""

    CALLER = "caller"
    PARTNER = "partner"

    @property
    def other(self) -> Leg:
        return Leg.PARTNER if self == Leg.CALLER else Leg.CALLER


class Place(enum.StrEnum):
    """Where a leg of a bridged call is, as its own webhooks said: only they move it, in order."""

    WHISPER = "whisper"  # the partner's phone answered; hearing who calls
    ROOM = "room"  # in the conference room, or on the way back into it
    AWAY = "away"  # stepped out with star: the menu, a message, the nurse
    DONE = "done"  # told the call is over; offered a message at most


class RoomEvent(enum.StrEnum):
    """Twilio's conference StatusCallbackEvent values that Peerline asks for and keeps."""

    START = "conference-start"
    END = "conference-end"
    JOIN = "participant-join"
    LEAVE = "participant-leave"


# The conference events asked for, as the TwiML attribute wants them (a space-separated string).
ROOM_EVENTS = ("start", "end", "join", "leave")


class StaffRole(enum.StrEnum):
    """Staff roles as stored and sent; app/services/staff.py orders them."""

    NURSE = "nurse"
    STAFF = "staff"
    ADMIN = "admin"


class Language(enum.StrEnum):
    """The languages every prompt is written in; a participant's `language` is one of these.

    The one rule for what a language may be: the API schema, the console form, the CLI
    and the services all check against this list, so adding a language is adding it here
    (and its prompts: tests/test_prompts.py refuses a catalogue with a gap).
    """

    EN = "en"
    ES = "es"


SUPPORTED_LANGUAGES = tuple(language.value for language in Language)


class UnsupportedLanguage(ValueError):
    """A language code Peerline has no prompts for."""

    def __init__(self, code: object) -> None:
        super().__init__(f"language must be one of: {', '.join(SUPPORTED_LANGUAGES)} (got {code!r})")


def language_of(code: str | None) -> Language:
    """The supported language a code names (`en`, ` ES `), or UnsupportedLanguage."""
    try:
        return Language((code or "").strip().lower())
    except ValueError:
        raise UnsupportedLanguage(code) from None
