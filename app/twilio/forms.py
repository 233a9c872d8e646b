"""Twilio's form fields, read once where a request comes in, into typed values.

Twilio sends everything as text. Here each field becomes what it means: a SID, a
known status, a bounded number, an aware time. A value that is malformed or out of
range becomes None, and is logged by field name only: a value may be a phone number.
Nothing past this module reads the raw form.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TypeVar

from ivr.vocab import AnsweredBy, CallStatus, Language, RecordingStatus, RoomEvent

log = logging.getLogger(__name__)

E = TypeVar("E", bound=enum.StrEnum)

# Twilio's SIDs are two letters and 32 hex digits; the bound leaves room without letting
# arbitrary text into a 64-character column.
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# the rooms Peerline names itself: app/services/calls.py new_room()
_ROOM = re.compile(r"[A-Za-z0-9_-]{1,40}")
_NOT_A_KEY = re.compile(r"[^0-9*#]")
_WHOLE = re.compile(r"[+-]?[0-9]+")
# NUL and other control characters: no database column takes them (PostgreSQL refuses NUL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_DIGITS = 32
MAX_NUMBER_TEXT = 128  # a caller ID is a number, or a short word when it is withheld
MAX_URL = 512  # the recording URL column
MAX_SECONDS = 24 * 60 * 60  # Twilio ends every call within a day
MAX_SEQUENCE = 2**31 - 1  # an INTEGER column
EARLIEST, LATEST = 2000, 2200  # a Twilio time outside these years is not one


@dataclass(frozen=True)
class Recording:
    """A care-team message: from the <Record> action, or the recording status callback."""

    recording_sid: str
    call_sid: str | None
    url: str | None
    duration_seconds: int | None
    # the status callback says when the recording is complete; the Record action comes after
    completed: bool


@dataclass(frozen=True)
class StepQuery:
    """What Peerline itself wrote into a step's URL: the room, and which ask this is."""

    room: str | None = None
    # a key was pressed after a neutral greeting: a person is there
    person: bool = False
    # the second ask: a wrong key now lets the call go
    again: bool = False
    # the listener's language, as the step that wrote the URL spoke it
    lang: Language | None = None


@dataclass(frozen=True)
class VoiceRequest:
    """Twilio asking what a call should do next: /twilio/voice and every step after it."""

    call_sid: str | None
    parent_call_sid: str | None
    from_: str
    to: str
    digits: str
    call_status: CallStatus | None
    dial_call_status: CallStatus | None
    dial_call_duration: int | None
    answered_by: AnsweredBy | None
    recording: Recording | None
    query: StepQuery = StepQuery()


@dataclass(frozen=True)
class StatusCallback:
    """A call changed status: /twilio/status. The partner's leg, placed with the REST API,
    names its room in the URL (`?room=`); an old dialled leg names its parent."""

    call_sid: str | None
    parent_call_sid: str | None
    call_status: CallStatus | None
    call_duration: int | None
    sequence_number: int | None
    timestamp: datetime | None
    room: str | None = None


@dataclass(frozen=True)
class ConferenceCallback:
    """The room changed: /twilio/conference (statusCallbackEvent start end join leave)."""

    conference_sid: str | None
    room: str | None
    call_sid: str | None
    event: RoomEvent | None
    sequence_number: int | None
    timestamp: datetime | None


# ---------------------------------------------------------------- parsing


def step_query(query: Mapping[str, str]) -> StepQuery:
    return StepQuery(
        room=_room(query, "room"),
        person=query.get("person", "") == "1",
        again=query.get("again", "") == "1",
        lang=_word(query, "lang", Language),
    )


def voice_request(form: Mapping[str, str], query: Mapping[str, str] | None = None) -> VoiceRequest:
    return VoiceRequest(
        call_sid=_sid(form, "CallSid"),
        parent_call_sid=_sid(form, "ParentCallSid"),
        from_=_number_text(form, "From"),
        to=_number_text(form, "To"),
        digits=_digits(form),
        call_status=_word(form, "CallStatus", CallStatus),
        dial_call_status=_word(form, "DialCallStatus", CallStatus),
        dial_call_duration=_count(form, "DialCallDuration", MAX_SECONDS),
        answered_by=_word(form, "AnsweredBy", AnsweredBy),
        recording=recording(form),
        query=step_query(query or {}),
    )


def status_callback(form: Mapping[str, str], query: Mapping[str, str] | None = None) -> StatusCallback:
    return StatusCallback(
        call_sid=_sid(form, "CallSid"),
        parent_call_sid=_sid(form, "ParentCallSid"),
        call_status=_word(form, "CallStatus", CallStatus),
        call_duration=_count(form, "CallDuration", MAX_SECONDS),
        sequence_number=_count(form, "SequenceNumber", MAX_SEQUENCE),
        timestamp=_timestamp(form, "Timestamp"),
        room=_room(query or {}, "room"),
    )


def conference_callback(form: Mapping[str, str]) -> ConferenceCallback:
    return ConferenceCallback(
        conference_sid=_sid(form, "ConferenceSid"),
        room=_room(form, "FriendlyName"),
        call_sid=_sid(form, "CallSid"),
        # Twilio sends more kinds (mute, hold, speaker...): they are not asked for, and ignored
        event=_word(form, "StatusCallbackEvent", RoomEvent),
        sequence_number=_count(form, "SequenceNumber", MAX_SEQUENCE),
        timestamp=_timestamp(form, "Timestamp"),
    )


def recording(form: Mapping[str, str]) -> Recording | None:
    """The recording the request is about, or None when it names none."""
    recording_sid = _sid(form, "RecordingSid")
    if recording_sid is None:
        return None
    # only the recording status callback can say a recording is complete: the <Record>
    # action names no status, and an `absent` or `failed` recording is no message
    status = _word(form, "RecordingStatus", RecordingStatus)
    return Recording(
        recording_sid=recording_sid,
        call_sid=_sid(form, "CallSid"),
        url=_url(form, "RecordingUrl"),
        duration_seconds=_count(form, "RecordingDuration", MAX_SECONDS),
        completed=status == RecordingStatus.COMPLETED,
    )


# ---------------------------------------------------------------- one field


def _ignored(name: str, why: str) -> None:
    log.info("ignored Twilio's %s: %s", name, why)


def _sid(form: Mapping[str, str], name: str) -> str | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not _SID.fullmatch(text):
        _ignored(name, "not a SID")
        return None
    return text


def _room(form: Mapping[str, str], name: str) -> str | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not _ROOM.fullmatch(text):
        _ignored(name, "not a room Peerline named")
        return None
    return text


def _number_text(form: Mapping[str, str], name: str) -> str:
    """A phone number as Twilio wrote it (or a word such as `anonymous`); normalised later."""
    text = form.get(name, "").strip()
    if len(text) > MAX_NUMBER_TEXT:
        _ignored(name, "too long")
        return ""
    if _CONTROL.search(text):
        _ignored(name, "control characters")
        return ""
    return text


def _digits(form: Mapping[str, str]) -> str:
    """Only keypad keys, and no more than anyone would type."""
    return _NOT_A_KEY.sub("", form.get("Digits", ""))[:MAX_DIGITS]


def _word(form: Mapping[str, str], name: str, vocabulary: type[E]) -> E | None:
    text = form.get(name, "").strip().lower()
    if not text:
        return None
    try:
        return vocabulary(text)
    except ValueError:
        _ignored(name, "not a known value")
        return None


def _count(form: Mapping[str, str], name: str, maximum: int) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    # int() would also take "١٢" or "1_000"; Twilio sends plain ASCII digits
    if not _WHOLE.fullmatch(text):
        _ignored(name, "not a whole number")
        return None
    # a thousand digits is out of range too, and int() refuses a few thousand
    value = int(text) if len(text) <= 20 else maximum + 1
    if not 0 <= value <= maximum:
        _ignored(name, "out of range")
        return None
    return value


def _timestamp(form: Mapping[str, str], name: str) -> datetime | None:
    """Twilio's RFC 2822 time; only an aware one is of use for ordering."""
    text = form.get(name, "").strip()
    if not text:
        return None
    # longer than any RFC 2822 time: not one, and never a key of the memo below
    stamp = "not a time" if len(text) >= MAX_TIMESTAMP else _rfc2822(text)
    if isinstance(stamp, str):
        _ignored(name, stamp)
        return None
    return stamp


MAX_TIMESTAMP = 64


@lru_cache(maxsize=256)
def _rfc2822(text: str) -> datetime | str:
    """The time, or why it is not one. Remembered: the callbacks of one moment of a call
    carry the same stamp, and the parse costs more than the rest of the form."""
    try:
        stamp = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return "not a time"
    if stamp.tzinfo is None:
        return "no time zone"
    if not EARLIEST <= stamp.year <= LATEST:
        return "out of range"
    return stamp


def _url(form: Mapping[str, str], name: str) -> str | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if len(text) > MAX_URL:
        _ignored(name, "too long")
        return None
    if _CONTROL.search(text) or not text.startswith(("https://", "http://")):
        _ignored(name, "not a URL")
        return None
    return text
