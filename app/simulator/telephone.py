"""A telephone in the terminal, and the driver the tests use for whole calls.

It plays Twilio: posts the same form fields to the same absolute URLs, signs each
request with the auth token exactly as Twilio does, and follows <Say>, <Gather>,
<Redirect>, <Record>, <Hangup> and <Dial> with <Conference> (or <Number>, the care
team's line). It plays every leg of a call, each with its own clock: the caller's, and
the partner's leg that the service places with the REST API (the fake takes the
request and hands the leg over, see switchboard.py). In the room it plays Twilio's
conference: a room starts once two are in it, its waitUrl is heard only before then,
star leaves it and asks that leg's Dial action, a REST redirect takes a leg out of it;
and it sends the status, recording and conference callbacks as Twilio does.

How long each stretch in the room lasts is asked of a party (`talk()`): the one who
stayed in the room (the caller, for the first stretch).
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import re
import secrets
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

from app.simulator.asgi import Answered, DirectClient, PhoneLine, basic_auth
from app.simulator.fake_twilio import CallsApi, FakeTwilio, Fields, PlacedCall, create_fake_twilio
from app.simulator.switchboard import SWITCHBOARD
from app.twilio.signature import SignedForm
from ivr.vocab import AnsweredBy, CallStatus, RecordingStatus

log = logging.getLogger(__name__)

HANG_UP = "h"
# how a stretch in the room ends, from the side of the party asked
OTHER_HANGS_UP, STAR, HANGS_UP, OTHER_STARS = "partner", "star", "hangup", "partner-star"
RING_SECONDS = 4
# without a way to know the service has finished its REST requests, how long a leg alone
# in a room waits for one before it gives up
WAIT_FOR_SERVICE_SECONDS = 5.0


def new_sid(prefix: str = "CA") -> str:
    return prefix + secrets.token_hex(16)


class Party(Protocol):
    """Someone holding a phone: hears text, presses keys, talks, records."""

    busy: bool
    answered_by: AnsweredBy

    def hear(self, text: str) -> None: ...
    def ring(self) -> bool: ...
    def keys(self, finish_on_key: str | None, num_digits: int | None) -> str | None: ...
    def talk(self) -> tuple[int, str]: ...
    def record(self) -> int | None: ...


@dataclass
class Scripted:
    """A party that follows a script: the keys to press at each prompt, in order.

    A `None` key is silence; "h" hangs up. In the room, the party asked how a stretch
    ends answers from `talk_seconds`/`ends`, then from `talks`, one stretch each time:
    "partner" (the other hangs up), "star" (I press star), "hangup" (I hang up) or
    "partner-star" (the other presses star). A phone that does not answer, is `busy`, or
    is a machine (`answered_by`) is scripted too. `message_seconds` 0 is silence.
    """

    keys_to_press: list[str | None] = field(default_factory=list)
    answers: bool = True
    talk_seconds: int = 0
    ends: str = OTHER_HANGS_UP
    message_seconds: int | None = 20
    talks: list[tuple[int, str]] = field(default_factory=list)
    busy: bool = False
    answered_by: AnsweredBy = AnsweredBy.HUMAN
    heard: list[str] = field(default_factory=list)
    _talked: int = 0

    def hear(self, text: str) -> None:
        self.heard.append(text)

    def ring(self) -> bool:
        return self.answers

    def keys(self, finish_on_key: str | None, num_digits: int | None) -> str | None:
        return self.keys_to_press.pop(0) if self.keys_to_press else None

    def talk(self) -> tuple[int, str]:
        self._talked += 1
        if self._talked == 1:
            return self.talk_seconds, self.ends
        return self.talks.pop(0) if self.talks else (0, OTHER_HANGS_UP)

    def record(self) -> int | None:
        return self.message_seconds

    @property
    def text(self) -> str:
        return " ".join(self.heard)


@dataclass
class CallRecord:
    """What a whole call looked like from Twilio's side: every document, every callback."""

    sid: str
    responses: list[ET.Element] = field(default_factory=list)
    partner_responses: list[ET.Element] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    partner_sid: str | None = None
    recording_sid: str | None = None
    seconds: int = 0
    # (url, form) of every callback sent: status, recording and conference
    callbacks: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # conference callbacks held back (Telephone(hold_room_callbacks=True)), to send later
    held_room_callbacks: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # seconds both legs were in the room together, as the simulator played it
    together_seconds: int = 0

    def verbs(self, tag: str) -> list[ET.Element]:
        return [el for doc in self.responses for el in doc.iter(tag)]

    def partner_verbs(self, tag: str) -> list[ET.Element]:
        return [el for doc in self.partner_responses for el in doc.iter(tag)]

    @property
    def room_callbacks(self) -> list[tuple[str, dict[str, str]]]:
        sent = [c for c in self.callbacks if "StatusCallbackEvent" in c[1] and "ConferenceSid" in c[1]]
        return sent + self.held_room_callbacks


class CallEnded(Exception):
    pass


def _text(say: ET.Element) -> str:
    return " ".join("".join(say.itertext()).split())


def _rfc2822(moment: float) -> str:
    return _rfc2822_second(int(moment))


@lru_cache(maxsize=1024)
def _rfc2822_second(second: int) -> str:
    # to the second, as Twilio's Timestamp: the callbacks of one step share it
    return format_datetime(datetime.fromtimestamp(second, UTC))


class Telephone:
    def __init__(
        self,
        client: PhoneLine,
        *,
        public_base_url: str,
        auth_token: str,
        programme_number: str,
        target_base_url: str | None = None,
        account_sid: str = "AC" + "0" * 32,
        settle: Callable[[], object] | None = None,
        rest_url: str | None = None,
        hold_room_callbacks: bool = False,
    ) -> None:
        """`settle` waits until the service has made the REST requests it decided on (a
        test passes the app's dialer); without it a leg left alone waits a few seconds.

        Driving an app in-process (a TestClient), the telephone also stands in for
        Twilio's REST API of that app, as pointing TWILIO_API_URL at a fake would.
        `rest_url` serves the fake REST API there for each call (`peerline phone`: the
        service's TWILIO_API_URL); by default it is read from the settings when that URL
        is on this machine and nothing listens on it yet.
        """
        self.client = client
        self.public = public_base_url.rstrip("/")
        self.target = (target_base_url or public_base_url).rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.programme_number = programme_number
        self.account_sid = account_sid
        self.settle = settle
        self.rest_url = rest_url
        self.hold_room_callbacks = hold_room_callbacks
        self.fake = FakeTwilio()
        self._status_seq: dict[str, Iterator[int]] = {}
        app = getattr(client, "app", None)
        if app is not None:
            self._wire_into(app)

    def _wire_into(self, app: Any) -> None:
        from app.twilio.dialer import dialer_for  # the service's side, only when driven in-process

        settings = app.state.context.settings
        self.fake.auth_token = settings.twilio_auth_token
        dialer = dialer_for(app)
        dialer.client = in_process_client(self.fake, settings.twilio_account_sid, settings.twilio_auth_token)
        self.settle = self.settle or dialer.wait_idle

    # ------------------------------------------------------------ http

    def post(self, url: str, params: dict[str, str]) -> Answered:
        """POST as Twilio would: form-encoded, signed over the public URL."""
        if url.startswith("/"):
            url = self.public + url
        signature = self.sign(url, params)
        target = self.target + url[len(self.public) :] if url.startswith(self.public) else url
        response = self.client.post(target, data=params, headers={"X-Twilio-Signature": signature})
        if self.settle is not None:
            self.settle()
        return response

    def sign(self, url: str, params: dict[str, str]) -> str:
        """X-Twilio-Signature as Twilio computes it, by the SDK, over a form that reads as a
        multi-dict: from a plain dict the SDK tries the multi-dicts of two web frameworks
        first for every field, each failing with an exception (20 µs a request, 4 µs so)."""
        return str(self.validator.compute_signature(url, SignedForm(params)))

    def twiml(self, url: str, params: dict[str, str]) -> ET.Element:
        response = self.post(url, params)
        if response.status_code != 200:
            raise AssertionError(f"{url} answered {response.status_code}: {response.text[:200]}")
        if not response.headers.get("content-type", "").startswith(("application/xml", "text/xml")):
            raise AssertionError(f"{url} answered {response.headers.get('content-type')}, not TwiML")
        return ET.fromstring(response.text)

    def status(self, url: str, base: dict[str, str], status: CallStatus, duration: int | None = None) -> None:
        """A status callback, numbered per call as Twilio numbers them."""
        params = {
            **base,
            "CallStatus": status,
            "SequenceNumber": str(next(self._status_seq.setdefault(base["CallSid"], itertools.count()))),
            "Timestamp": format_datetime(datetime.now(UTC)),
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        self.post(url, params)

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
        """Dial the programme's number from `from_number`; `partner` plays the partner's phone."""
        record = CallRecord(sid or new_sid())
        with self._serving_rest():
            exchange = Exchange(self, record, partner)
            exchange.dial_in(from_number, caller, url, extra or {}, final_status=send_final_status)
            exchange.run()
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
        answered_by: AnsweredBy = AnsweredBy.HUMAN,
        unanswered: CallStatus = CallStatus.NO_ANSWER,
    ) -> CallRecord:
        """Play the phone Peerline rings (a reminder): Twilio's side of an outbound call."""
        record = CallRecord(sid)
        exchange = Exchange(self, record, partner)
        placed = self.fake.find(sid) or PlacedCall(
            sid=sid,
            to=to,
            from_=self.programme_number,
            url=url,
            status_callback=status_callback,
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            machine_detection="DetectMessageEnd",
            account_sid=self.account_sid,
        )
        exchange.ring_out(placed, callee, answered_by=answered_by, unanswered=unanswered)
        exchange.run()
        return record

    # ------------------------------------------------------------ the fake REST API, served

    def _serving_rest(self) -> Any:
        from contextlib import nullcontext

        url = self.rest_url if self.rest_url is not None else self._rest_url_from_settings()
        if not url:
            return nullcontext()
        return _RestServer(self.fake, url)

    def _rest_url_from_settings(self) -> str | None:
        if getattr(self.client, "app", None) is not None:
            return None  # wired in-process already
        try:
            from app.settings import Settings

            url = Settings().twilio_api_url
        except Exception:
            return None
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            return None
        return url if _free(parts.hostname or "127.0.0.1", parts.port or 80) else None


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class _RestServer:
    """The fake REST API on the URL the service was told, for the length of one call."""

    def __init__(self, fake: FakeTwilio, url: str) -> None:
        self.fake = fake
        self.url = urlsplit(url)

    def __enter__(self) -> _RestServer:
        import uvicorn

        config = uvicorn.Config(
            create_fake_twilio(self.fake),
            host=self.url.hostname or "127.0.0.1",
            port=self.url.port or 80,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def in_process_client(fake: FakeTwilio, account_sid: str, auth_token: str) -> Any:
    """Twilio's SDK client, its requests answered by the fake in this process.

    A request to the Calls resource is answered by the fake's own functions on the calling
    thread (fake_twilio.CallsApi: the same checks, answers and errors as over HTTP,
    without the web framework); anything else is one ASGI call into the fake's app on
    the calling thread's own event loop (asgi.py). The service's dialer threads and the
    reminder sweep place calls without a thread started per request.
    """
    from twilio.http import HttpClient
    from twilio.http.response import Response as TwilioResponse
    from twilio.rest import Client

    fake_app = create_fake_twilio(fake)
    calls_api = CallsApi(fake)
    fake_api = DirectClient(fake_app)

    class InProcess(HttpClient):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(logger=log, is_async=False)

        def request(
            self,
            method: str,
            uri: str,
            params: dict[str, object] | None = None,
            data: dict[str, object] | None = None,
            headers: dict[str, str] | None = None,
            auth: tuple[str, str] | None = None,
            timeout: float | None = None,
            allow_redirects: bool = False,
        ) -> TwilioResponse:
            # a list is one form field per value, as requests sends it to Twilio
            form = [
                (key, str(v))
                for key, value in (data or {}).items()
                for v in (value if isinstance(value, list) else [value])
            ]
            sent = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
            if auth is not None:
                sent["Authorization"] = basic_auth(*auth)
            path = urlsplit(uri).path
            calls = _CALLS_PATH.fullmatch(path)
            if calls is not None and not params and method.upper() in ("GET", "POST"):
                account, sid = calls.group(1), calls.group(2)
                status, body = calls_api.request(
                    method.upper(), account, sid, _header(sent, "authorization"), Fields(form)
                )
                return TwilioResponse(status, json.dumps(body), {"content-type": "application/json"})
            query = urlencode([(k, str(v)) for k, v in (params or {}).items()])
            answer = fake_api.request(
                method.upper(),
                path + (f"?{query}" if query else ""),
                body=urlencode(form).encode(),
                headers=sent,
                form=bool(form),
            )
            return TwilioResponse(answer.status_code, answer.text, answer.headers)

    return Client(account_sid, auth_token, http_client=InProcess())


# the Calls resource's two paths, as the fake's app routes them
_CALLS_PATH = re.compile(r"/2010-04-01/Accounts/([^/]+)/Calls(?:/([^/]+))?\.json")


def _header(headers: dict[str, str], name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name), "")


# ---------------------------------------------------------------- the exchange


@dataclass
class Room:
    name: str
    sid: str = field(default_factory=lambda: new_sid("CF"))
    members: list[CallLeg] = field(default_factory=list)
    started: bool = False
    status_callback: str | None = None
    sequence: Iterator[int] = field(default_factory=lambda: itertools.count(1))


@dataclass(eq=False)
class CallLeg:
    """One call leg as Twilio plays it, with its own clock (seconds since the epoch)."""

    exchange: Exchange
    sid: str
    party: Party
    base: dict[str, str]
    is_partner: bool
    clock: float
    started: float
    status_callback: str | None = None
    status_events: tuple[str, ...] = ("completed",)
    placed: PlacedCall | None = None
    doc: ET.Element | None = None
    pc: int = 0
    url: str | None = None  # a URL to fetch before going on (a redirect, or the answer)
    ringing: bool = False
    room: Room | None = None
    dial: ET.Element | None = None
    starred: bool = False
    ended: bool = False
    final: CallStatus = CallStatus.COMPLETED
    answered_by: AnsweredBy | None = None
    _status: CallStatus = CallStatus.QUEUED

    # ------------------------------------------------------------ what the REST API sees

    @property
    def status(self) -> CallStatus:
        return self._status

    @status.setter
    def status(self, value: CallStatus) -> None:
        self._status = value
        if self.placed is not None:
            self.placed.status = value

    def redirect(self, url: str | None, twiml: str | None) -> None:
        self.exchange.inbox.put(("redirect", self, url, twiml))

    def end(self) -> None:
        self.exchange.inbox.put(("end", self, None, None))

    @property
    def runnable(self) -> bool:
        return not self.ended and (self.ringing or self.url is not None or self.doc is not None)


class Exchange:
    """Every leg of one call and the room they meet in, played to the end."""

    def __init__(self, phone: Telephone, record: CallRecord, partner: Party | None) -> None:
        self.phone = phone
        self.record = record
        self.partner = partner or Scripted(answers=False)
        self.legs: list[CallLeg] = []
        self.rooms: dict[str, Room] = {}
        self.inbox: queue.Queue[tuple[str, Any, str | None, str | None]] = queue.Queue()
        self.now = time.time()
        self.room_names: set[str] = set()

    # ------------------------------------------------------------ legs

    def dial_in(
        self, from_number: str, party: Party, url: str, extra: dict[str, str], *, final_status: bool
    ) -> None:
        base = {
            "AccountSid": self.phone.account_sid,
            "CallSid": self.record.sid,
            "From": from_number,
            "To": self.phone.programme_number,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            **extra,
        }
        leg = self._leg(self.record.sid, party, base, is_partner=False)
        leg.status = CallStatus.RINGING
        leg.status_callback = self.phone.public + "/twilio/status" if final_status else None
        leg.url = url

    def ring_out(
        self,
        placed: PlacedCall,
        party: Party,
        *,
        is_partner: bool = False,
        answered_by: AnsweredBy | None = None,
        unanswered: CallStatus = CallStatus.NO_ANSWER,
    ) -> CallLeg:
        base = {
            "AccountSid": placed.account_sid,
            "CallSid": placed.sid,
            "From": placed.from_,
            "To": placed.to,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
        }
        leg = self._leg(placed.sid, party, base, is_partner=is_partner)
        leg.placed = placed
        leg.status_callback = placed.status_callback
        leg.status_events = tuple(placed.status_callback_event) or ("completed",)
        leg.url = placed.url
        leg.ringing = True
        leg.final = unanswered
        if placed.machine_detection:
            leg.answered_by = answered_by or party.answered_by
        if is_partner:
            self.record.partner_sid = placed.sid
        return leg

    def _leg(self, sid: str, party: Party, base: dict[str, str], *, is_partner: bool) -> CallLeg:
        leg = CallLeg(self, sid, party, base, is_partner, clock=self.now, started=self.now)
        self.legs.append(leg)
        SWITCHBOARD.play(sid, leg)
        return leg

    def _take(self, placed: object) -> None:
        """The service placed a leg for a room of ours (called on the fake's thread)."""
        self.inbox.put(("placed", placed, None, None))

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        try:
            while True:
                self._drain(self.now)
                ready = [leg for leg in self.legs if leg.runnable]
                if ready:
                    self._advance(min(ready, key=lambda leg: leg.clock))
                    continue
                if self._play_out_a_stretch():
                    continue
                waiting = [leg for leg in self.legs if not leg.ended]
                if not waiting:
                    return
                if self._wait_for_the_service(max(leg.clock for leg in waiting)):
                    continue
                for leg in waiting:  # nothing more will come: those left alone give up
                    leg.party.hear("(silence)")
                    self._hang_up(leg)
        finally:
            for leg in self.legs:
                SWITCHBOARD.forget(leg.sid)
            for room in self.room_names:
                SWITCHBOARD.leave(room)

    def _drain(self, at: float) -> None:
        while True:
            try:
                what, subject, url, twiml = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._apply(what, subject, url, twiml, at)

    def _wait_for_the_service(self, at: float) -> bool:
        if self.phone.settle is not None:
            self.phone.settle()
            if self.inbox.empty():
                return False
            self._drain(at)
            return True
        try:
            what, subject, url, twiml = self.inbox.get(timeout=WAIT_FOR_SERVICE_SECONDS)
        except queue.Empty:
            return False
        self._apply(what, subject, url, twiml, at)
        return True

    def _apply(self, what: str, subject: Any, url: str | None, twiml: str | None, at: float) -> None:
        if what == "placed":
            leg = self.ring_out(subject, self.partner, is_partner=True)
            leg.clock = max(leg.clock, at)
            return
        leg = subject
        if leg.ended:
            return
        leg.clock = max(leg.clock, at)
        if what == "end":
            self._hang_up(leg, CallStatus.CANCELED if leg.ringing else CallStatus.COMPLETED)
            return
        # Twilio stops what the leg is doing (leaving its room, without its Dial action)
        self._leave_room(leg, reason="participant_updated_via_api")
        leg.doc, leg.pc, leg.url = None, 0, url
        if twiml is not None:
            leg.doc = ET.fromstring(twiml)

    # ------------------------------------------------------------ one leg, one step

    def _advance(self, leg: CallLeg) -> None:
        try:
            if leg.ringing:
                self._ring(leg)
            elif leg.url is not None:
                url, leg.url = leg.url, None
                self._fetch(leg, url, {"CallStatus": leg.status})
            else:
                self._verb(leg)
        except CallEnded:
            self._hang_up(leg)

    def _fetch(self, leg: CallLeg, url: str, params: dict[str, str]) -> None:
        form = {**leg.base, **params}
        if leg.status == CallStatus.RINGING:
            # an incoming call is answered to carry out its TwiML: from now on it can be moved
            leg.status = CallStatus.IN_PROGRESS
        doc = self.phone.twiml(url, form)
        (self.record.partner_responses if leg.is_partner else self.record.responses).append(doc)
        leg.doc, leg.pc = doc, 0
        for conference in doc.iter("Conference"):
            # the service may place the partner's leg for this room at any moment now
            name = (conference.text or "").strip()
            self.room_names.add(name)
            SWITCHBOARD.wait_in(name, self._take)
        self.now = max(self.now, leg.clock)
        self._drain(leg.clock)

    def _ring(self, leg: CallLeg) -> None:
        leg.ringing = False
        self._status(leg, CallStatus.INITIATED, "initiated")
        self._status(leg, CallStatus.RINGING, "ringing")
        if leg.party.busy:
            leg.final = CallStatus.BUSY
            raise CallEnded
        if not leg.party.ring():
            leg.clock += leg.placed.timeout if leg.placed and leg.placed.timeout else 30
            if leg.final == CallStatus.COMPLETED:
                leg.final = CallStatus.NO_ANSWER
            raise CallEnded
        leg.clock += RING_SECONDS
        leg.final = CallStatus.COMPLETED
        self._status(leg, CallStatus.IN_PROGRESS, "answered")
        params: dict[str, str] = {"CallStatus": CallStatus.IN_PROGRESS}
        if leg.answered_by is not None:
            params["AnsweredBy"] = leg.answered_by
        url, leg.url = leg.url, None
        if leg.placed is not None and leg.placed.twiml:
            leg.doc = ET.fromstring(leg.placed.twiml)
        elif url:
            self._fetch(leg, url, params)

    def _status(self, leg: CallLeg, status: CallStatus, event: str, duration: int | None = None) -> None:
        leg.status = status
        if leg.status_callback is None or event not in leg.status_events:
            return
        params = {
            **leg.base,
            "CallStatus": status,
            "SequenceNumber": str(next(self.phone._status_seq.setdefault(leg.sid, itertools.count()))),
            "Timestamp": _rfc2822(leg.clock),
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        self.record.callbacks.append((leg.status_callback, params))
        self.phone.post(leg.status_callback, params)
        self._drain(leg.clock)

    def _hang_up(self, leg: CallLeg, status: CallStatus | None = None) -> None:
        if leg.ended:
            return
        leg.ended, leg.ringing, leg.doc, leg.url = True, False, None, None
        self._leave_room(leg, reason="participant_hung_up")
        final = status or (
            leg.final if leg.status.rank < CallStatus.IN_PROGRESS.rank else CallStatus.COMPLETED
        )
        seconds = int(leg.clock - leg.started) if final == CallStatus.COMPLETED else 0
        if not leg.is_partner:
            self.record.seconds = seconds
        if leg.placed is not None:
            leg.placed.duration = seconds
            leg.placed.ended_at = datetime.fromtimestamp(leg.clock, UTC)
        SWITCHBOARD.forget(leg.sid)
        self._status(leg, final, "completed", seconds)

    # ------------------------------------------------------------ TwiML

    def _verb(self, leg: CallLeg) -> None:
        assert leg.doc is not None
        verbs = list(leg.doc)
        if leg.pc >= len(verbs):
            raise CallEnded  # the document ran out of verbs: Twilio hangs up
        verb = verbs[leg.pc]
        leg.pc += 1
        who = leg.party
        match verb.tag:
            case "Say":
                who.hear(_text(verb))
                leg.clock += max(1, round(len(_text(verb).split()) / 2.5))
            case "Pause":
                leg.clock += int(verb.get("length", "1"))
            case "Play":
                who.hear("(music)")
                leg.clock += 5
            case "Gather":
                self._gather(leg, verb)
            case "Redirect":
                self._fetch(leg, (verb.text or "").strip(), {"CallStatus": CallStatus.IN_PROGRESS})
            case "Record":
                self._record(leg, verb)
            case "Dial":
                self._dial(leg, verb)
            case "Hangup" | "Reject":
                raise CallEnded

    def _gather(self, leg: CallLeg, gather: ET.Element) -> None:
        for say in gather.iter("Say"):
            leg.party.hear(_text(say))
            leg.clock += max(1, round(len(_text(say).split()) / 2.5))
        num = gather.get("numDigits")
        finish = gather.get("finishOnKey")
        digits = leg.party.keys(finish, int(num) if num else None)
        if digits == HANG_UP:
            raise CallEnded
        if not digits:
            leg.clock += int(gather.get("timeout", "5"))
            return
        leg.clock += 2
        if finish and digits.endswith(finish):
            digits = digits[: -len(finish)]
        self._fetch(leg, gather.get("action", ""), {"Digits": digits, "CallStatus": CallStatus.IN_PROGRESS})

    def _record(self, leg: CallLeg, verb: ET.Element) -> None:
        seconds = leg.party.record()
        if seconds is None:
            raise CallEnded
        recording_sid = new_sid("RE")
        leg.clock += max(seconds, 1)
        recording = {
            "AccountSid": self.phone.account_sid,
            "CallSid": leg.sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": (
                f"https://api.twilio.com/2010-04-01/Accounts/{self.phone.account_sid}/Recordings/{recording_sid}"
            ),
            "RecordingDuration": str(seconds),
        }
        callback = verb.get("recordingStatusCallback")
        status = RecordingStatus.COMPLETED if seconds > 0 else RecordingStatus.ABSENT
        if callback:
            params = {**recording, "RecordingStatus": status}
            self.record.callbacks.append((callback, params))
            self.phone.post(callback, params)
        if seconds <= 0:
            return  # nothing recorded: Twilio skips the action and goes on with the next verb
        self.record.recording_sid = recording_sid
        self._fetch(
            leg, verb.get("action", ""), {**recording, "Digits": "#", "CallStatus": CallStatus.IN_PROGRESS}
        )

    def _dial(self, leg: CallLeg, dial: ET.Element) -> None:
        conference = dial.find("Conference")
        if conference is not None:
            leg.dial = dial
            self._join_room(leg, conference)
            return
        number = dial.find("Number")
        if number is None:
            raise CallEnded
        # the care team's line: a nurse answers and talks for a while
        leg.party.hear("(the care team's line rings; a nurse answers)")
        talked = 60
        leg.clock += RING_SECONDS + talked
        self._fetch(
            leg,
            dial.get("action", ""),
            {
                "CallStatus": CallStatus.IN_PROGRESS,
                "DialCallStatus": CallStatus.COMPLETED,
                "DialCallDuration": str(talked),
                "DialCallSid": new_sid(),
            },
        )

    # ------------------------------------------------------------ the room

    def _join_room(self, leg: CallLeg, conference: ET.Element) -> None:
        name = (conference.text or "").strip()
        room = self.rooms.get(name)
        if room is None or (not room.members and room.started):
            room = Room(name, status_callback=conference.get("statusCallback"))
            self.rooms[name] = room
        room.members.append(leg)
        leg.room, leg.doc = room, None
        self._room_event(room, "participant-join", leg)
        if len(room.members) >= 2 and not room.started:
            room.started = True
            self._room_event(room, "conference-start", None)
        elif not room.started:
            wait = conference.get("waitUrl")
            if wait:
                # Twilio plays the waitUrl to one alone in a room that has not started
                doc = self.phone.twiml(
                    wait, {**leg.base, "ConferenceSid": room.sid, "CallStatus": leg.status}
                )
                for say in doc.iter("Say"):
                    leg.party.hear(_text(say))
                self._drain(leg.clock)

    def _leave_room(self, leg: CallLeg, *, reason: str | None) -> None:
        room = leg.room
        if room is None:
            return
        room.members.remove(leg)
        leg.room = None
        self._room_event(room, "participant-leave", leg, reason)
        if not room.members:
            self._room_event(room, "conference-end", leg)
            room.started = True  # an emptied room is over: joining its name starts a new one

    def _room_event(self, room: Room, event: str, leg: CallLeg | None, reason: str | None = None) -> None:
        at = leg.clock if leg is not None else max(m.clock for m in room.members)
        params = {
            "AccountSid": self.phone.account_sid,
            "ConferenceSid": room.sid,
            "FriendlyName": room.name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(next(room.sequence)),
            "Timestamp": _rfc2822(at),
        }
        if leg is not None and event.startswith("participant"):
            params["CallSid"] = leg.sid
            params["Muted"], params["Hold"] = "false", "false"
            if reason and event == "participant-leave":
                params["ReasonParticipantLeft"] = reason
        if room.status_callback is None:
            return
        if self.phone.hold_room_callbacks:
            self.record.held_room_callbacks.append((room.status_callback, params))
            return
        self.record.callbacks.append((room.status_callback, params))
        self.phone.post(room.status_callback, params)
        self._drain(at)

    def _play_out_a_stretch(self) -> bool:
        """Two legs in a room, neither with anything else to do: they talk until one ends it."""
        for room in self.rooms.values():
            if len(room.members) < 2:
                continue
            first, second = room.members[0], room.members[1]
            # the one who stayed in the room says how the stretch ends; the caller at first
            second_stayed = first.starred and not second.starred
            if second_stayed or (first.starred == second.starred and first.is_partner):
                first, second = second, first
            first.starred = second.starred = False
            start = max(first.clock, second.clock)
            seconds, ends = first.party.talk()
            first.clock = second.clock = start + seconds
            self.record.together_seconds += seconds
            match ends:
                case "star":
                    self._star(first)
                case "hangup":
                    self._hang_up(first)
                case "partner-star":
                    self._star(second)
                case _:
                    self._hang_up(second)
            return True
        return False

    def _star(self, leg: CallLeg) -> None:
        dial = leg.dial
        if dial is None or dial.get("hangupOnStar") != "true":
            return  # Twilio hears no keys in a room: star does nothing without hangupOnStar
        leg.starred = True
        self._leave_room(leg, reason=None)
        leg.dial = None
        # the room goes on; Twilio asks this leg's Dial action (no DialCallDuration after a room)
        self._fetch(
            leg,
            dial.get("action", ""),
            {"CallStatus": CallStatus.IN_PROGRESS, "DialCallStatus": CallStatus.ANSWERED},
        )
