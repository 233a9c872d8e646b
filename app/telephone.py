"""A telephone in the terminal, and the driver the tests use for whole calls.

It plays Twilio: posts the same form fields to the same absolute URLs, signs each
request with the auth token exactly as Twilio does, follows <Say>, <Gather>,
<Redirect>, <Dial> (simulating the partner's leg and whisper), <Record> and
<Hangup>, and sends the status and recording callbacks.
"""

from __future__ import annotations

import itertools
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from twilio.request_validator import RequestValidator

HANG_UP = "h"


def new_sid(prefix: str = "CA") -> str:
    return prefix + secrets.token_hex(16)


class Party(Protocol):
    """Someone holding a phone: hears text, presses keys, talks, records."""

    def hear(self, text: str) -> None: ...
    def ring(self) -> bool: ...
    def keys(self, finish_on_key: str | None, num_digits: int | None) -> str | None: ...
    def talk(self) -> tuple[int, str]: ...
    def record(self) -> int | None: ...


@dataclass
class Scripted:
    """A party that follows a script: the keys to press at each prompt, in order.

    A `None` key is silence; "h" hangs up. `talk_seconds` is the conversation length
    once bridged, ended by `ends` ("partner", "star" or "hangup").
    """

    keys_to_press: list[str | None] = field(default_factory=list)
    answers: bool = True
    talk_seconds: int = 0
    ends: str = "partner"
    message_seconds: int | None = 20
    heard: list[str] = field(default_factory=list)

    def hear(self, text: str) -> None:
        self.heard.append(text)

    def ring(self) -> bool:
        return self.answers

    def keys(self, finish_on_key: str | None, num_digits: int | None) -> str | None:
        return self.keys_to_press.pop(0) if self.keys_to_press else None

    def talk(self) -> tuple[int, str]:
        return self.talk_seconds, self.ends

    def record(self) -> int | None:
        return self.message_seconds

    @property
    def text(self) -> str:
        return " ".join(self.heard)


@dataclass
class CallRecord:
    sid: str
    responses: list[ET.Element] = field(default_factory=list)
    partner_responses: list[ET.Element] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    partner_sid: str | None = None
    recording_sid: str | None = None
    seconds: int = 30  # time on the line besides the conversation and the message

    def verbs(self, tag: str) -> list[ET.Element]:
        return [el for doc in self.responses for el in doc.iter(tag)]


class CallEnded(Exception):
    pass


def _text(say: ET.Element) -> str:
    return " ".join("".join(say.itertext()).split())


class Telephone:
    def __init__(
        self,
        client: httpx.Client,
        *,
        public_base_url: str,
        auth_token: str,
        programme_number: str,
        target_base_url: str | None = None,
        account_sid: str = "AC" + "0" * 32,
    ) -> None:
        self.client = client
        self.public = public_base_url.rstrip("/")
        self.target = (target_base_url or public_base_url).rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.programme_number = programme_number
        self.account_sid = account_sid
        self._seq: Iterator[int] = itertools.count()

    # ------------------------------------------------------------ http

    def post(self, url: str, params: dict[str, str]) -> httpx.Response:
        """POST as Twilio would: form-encoded, signed over the public URL."""
        if url.startswith("/"):
            url = self.public + url
        signature = self.validator.compute_signature(url, params)
        target = self.target + url[len(self.public) :] if url.startswith(self.public) else url
        return self.client.post(target, data=params, headers={"X-Twilio-Signature": signature})

    def _twiml(self, url: str, params: dict[str, str]) -> ET.Element:
        response = self.post(url, params)
        if response.status_code != 200:
            raise AssertionError(f"{url} answered {response.status_code}: {response.text[:200]}")
        if not response.headers.get("content-type", "").startswith(("application/xml", "text/xml")):
            raise AssertionError(f"{url} answered {response.headers.get('content-type')}, not TwiML")
        return ET.fromstring(response.text)

    # ------------------------------------------------------------ a whole call

    def call(
        self,
        from_number: str,
        caller: Party,
        partner: Party | None = None,
        *,
        sid: str | None = None,
        url: str = "/twilio/voice",
        extra: dict[str, str] | None = None,
        send_final_status: bool = True,
    ) -> CallRecord:
        record = CallRecord(sid or new_sid())
        base = {
            "AccountSid": self.account_sid,
            "CallSid": record.sid,
            "From": from_number,
            "To": self.programme_number,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        base.update(extra or {})
        try:
            doc = self._twiml(url, {**base, "CallStatus": "ringing"})
            record.responses.append(doc)
            self._run(doc, base, caller, partner or Scripted(answers=False), record)
        except CallEnded:
            pass
        if send_final_status:
            self.status(self.public + "/twilio/status", base, "completed", record.seconds)
        return record

    def answer(
        self,
        sid: str,
        to: str,
        url: str,
        callee: Party,
        partner: Party | None = None,
        *,
        status_callback: str | None = None,
        answered_by: str = "human",
        unanswered: str = "no-answer",
    ) -> CallRecord:
        """Play the phone Peerline rings (a reminder): Twilio's side of an outbound call."""
        record = CallRecord(sid)
        base = {
            "AccountSid": self.account_sid,
            "CallSid": sid,
            "From": self.programme_number,
            "To": to,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
        }
        if status_callback:
            self.status(status_callback, base, "initiated")
            self.status(status_callback, base, "ringing")
        if not callee.ring():
            if status_callback:
                self.status(status_callback, base, unanswered, 0)
            return record
        if status_callback:
            self.status(status_callback, base, "in-progress")
        try:
            doc = self._twiml(url, {**base, "CallStatus": "in-progress", "AnsweredBy": answered_by})
            record.responses.append(doc)
            self._run(doc, base, callee, partner or Scripted(answers=False), record)
        except CallEnded:
            pass
        if status_callback:
            self.status(status_callback, base, "completed", record.seconds)
        return record

    def status(self, url: str, base: dict[str, str], status: str, duration: int | None = None) -> None:
        params = {
            **base,
            "CallStatus": status,
            "SequenceNumber": str(next(self._seq)),
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        self.post(url, params)

    def _run(
        self, doc: ET.Element, base: dict[str, str], who: Party, partner: Party, record: CallRecord
    ) -> None:
        """Carry out TwiML documents until the call ends; a verb that fetches new TwiML continues with it."""
        current: ET.Element | None = doc
        while current is not None:
            current = self._next_document(current, base, who, partner, record)
            if current is not None:
                record.responses.append(current)

    def _next_document(
        self, doc: ET.Element, base: dict[str, str], who: Party, partner: Party, record: CallRecord
    ) -> ET.Element | None:
        for verb in list(doc):
            if verb.tag == "Say":
                who.hear(_text(verb))
            elif verb.tag == "Gather":
                for child in verb.iter("Say"):
                    who.hear(_text(child))
                num = verb.get("numDigits")
                finish = verb.get("finishOnKey")
                digits = who.keys(finish, int(num) if num else None)
                if digits == HANG_UP:
                    raise CallEnded
                if digits:
                    if finish and digits.endswith(finish):
                        digits = digits[: -len(finish)]
                    params = {**base, "Digits": digits, "CallStatus": "in-progress"}
                    return self._twiml(verb.get("action", ""), params)
            elif verb.tag == "Redirect":
                return self._twiml((verb.text or "").strip(), {**base, "CallStatus": "in-progress"})
            elif verb.tag in ("Dial", "Record"):
                if verb.tag == "Dial":
                    next_doc = self._dial(verb, base, who, partner, record)
                else:
                    next_doc = self._record(verb, base, who, record)
                if next_doc is None:
                    raise CallEnded
                return next_doc
            elif verb.tag == "Hangup":
                raise CallEnded
        raise CallEnded  # the document ran out of verbs: Twilio hangs up

    def _dial(
        self, dial: ET.Element, base: dict[str, str], caller: Party, partner: Party, record: CallRecord
    ) -> ET.Element | None:
        number = dial.find("Number")
        assert number is not None, "a <Dial> without a <Number>"
        child = {
            "AccountSid": self.account_sid,
            "CallSid": new_sid(),
            "ParentCallSid": base["CallSid"],
            "From": dial.get("callerId", ""),
            "To": (number.text or "").strip(),
            "Direction": "outbound-dial",
            "ApiVersion": "2010-04-01",
        }
        record.partner_sid = child["CallSid"]
        status_url = number.get("statusCallback")
        if status_url:
            self.status(status_url, child, "initiated")
            self.status(status_url, child, "ringing")
        talked, ended_by, dial_status = 0, "partner", "no-answer"
        if partner.ring():
            if status_url:
                self.status(status_url, child, "in-progress")
            accepted = self._whisper(number, child, partner, record)
            dial_status = "completed"
            if accepted:
                talked, ended_by = caller.talk()
                record.seconds += talked
            else:
                talked = 10  # Twilio counts the whisper itself as time on the partner's leg
        if status_url:
            self.status(status_url, child, "completed" if dial_status == "completed" else dial_status, talked)
        params = {
            **base,
            "CallStatus": "in-progress",
            "DialCallSid": child["CallSid"],
            "DialCallStatus": dial_status,
            "DialCallDuration": str(talked),
        }
        next_doc = self._twiml(dial.get("action", ""), params)
        return None if ended_by == "hangup" else next_doc

    def _whisper(self, number: ET.Element, child: dict[str, str], partner: Party, record: CallRecord) -> bool:
        url = number.get("url")
        if not url:
            return True
        doc: ET.Element | None = self._twiml(url, {**child, "CallStatus": "in-progress"})
        while doc is not None:
            record.partner_responses.append(doc)
            next_doc = None
            for verb in list(doc):
                if verb.tag == "Say":
                    partner.hear(_text(verb))
                elif verb.tag == "Gather":
                    for say in verb.iter("Say"):
                        partner.hear(_text(say))
                    num = verb.get("numDigits")
                    digits = partner.keys(verb.get("finishOnKey"), int(num) if num else None)
                    if digits == HANG_UP:
                        return False
                    if digits:
                        next_doc = self._twiml(
                            verb.get("action", ""), {**child, "Digits": digits, "CallStatus": "in-progress"}
                        )
                        break
                elif verb.tag == "Hangup":
                    return False
            if next_doc is None:
                return True  # the whisper ran out of verbs: the bridge opens
            doc = next_doc
        return True

    def _record(
        self, verb: ET.Element, base: dict[str, str], caller: Party, record: CallRecord
    ) -> ET.Element | None:
        seconds = caller.record()
        if seconds is None:
            return None
        record.recording_sid = new_sid("RE")
        record.seconds += seconds
        rec = {
            "RecordingSid": record.recording_sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Recordings/{record.recording_sid}",
            "RecordingDuration": str(seconds),
        }
        callback = verb.get("recordingStatusCallback")
        if callback:
            self.post(
                callback,
                {
                    "AccountSid": self.account_sid,
                    "CallSid": base["CallSid"],
                    "RecordingStatus": "completed",
                    **rec,
                },
            )
        return self._twiml(
            verb.get("action", ""), {**base, **rec, "Digits": "#", "CallStatus": "in-progress"}
        )
