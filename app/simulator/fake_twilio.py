"""A local stand-in for Twilio's Calls resource, for development and tests.

It answers like Twilio where the service depends on it (checked against Twilio's
published API description, twilio/twilio-oai, and its error pages):

  POST /2010-04-01/Accounts/{AccountSid}/Calls.json        place a call: 201 and the call
  POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json  move a live call (Url or Twiml),
                                                           or end it (Status)
  GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json  the call as it stands
  GET  /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}  a recording's audio

Errors carry Twilio's body, `{"code", "message", "more_info", "status"}`: wrong
credentials 401/20003, no `To` 400/21201, no `From` 400/21213, neither `Url` nor `Twiml`
400/21205, a malformed `To` 400/21211, an unknown call 404/20404, a call that is not in
progress 400/21220, too many requests 429/20429.

A placed call is played by whoever takes it: the telephone whose room it was placed for
(see switchboard.py), else `on_call` (`peerline fake-twilio` rings this terminal), else
it waits, `queued`, for a test to answer it. No internet and no Twilio account needed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.simulator.switchboard import SWITCHBOARD, Switchboard
from ivr.vocab import CallStatus

ERRORS = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required. For more information, see http://www.twilio.com/docs/api/twiml",
    21211: "Invalid 'To' Phone Number",
    21213: "No 'From' number is specified",
    21220: "Call is not in-progress. Cannot redirect.",
}


def error_body(status: int, code: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": ERRORS.get(code, "error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def twilio_error(status: int, code: int) -> JSONResponse:
    return JSONResponse(error_body(status, code), status_code=status)


@dataclass
class PlacedCall:
    sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    status_callback_event: list[str]
    machine_detection: str | None
    account_sid: str
    twiml: str | None = None
    timeout: int | None = None
    status: CallStatus = CallStatus.QUEUED
    duration: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass
class FakeTwilio:
    """The fake's memory, and failures queued for the next requests (429, 500, or a hang).

    `auth_token`, when set, must be the password of the request's Basic authentication;
    the user must always be the account SID in the URL.
    """

    calls: list[PlacedCall] = field(default_factory=list)
    failures: list[int | float] = field(default_factory=list)
    on_call: Callable[[PlacedCall], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    auth_token: str | None = None
    switchboard: Switchboard = field(default_factory=lambda: SWITCHBOARD)
    # every change of a live call asked for, in order: (sid, what)
    changes: list[tuple[str, str]] = field(default_factory=list)

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def hang_next(self, seconds: float) -> None:
        self.failures.append(float(seconds))

    def find(self, sid: str) -> PlacedCall | None:
        with self.lock:
            return next((c for c in self.calls if c.sid == sid), None)

    def set_status(self, sid: str, status: CallStatus, duration: int | None = None) -> None:
        """What a test makes Twilio say about a call it placed (for `calls(sid).fetch()`)."""
        call = self.find(sid)
        assert call is not None, "no such call placed"
        call.status, call.duration = status, duration
        if status.is_terminal:
            call.ended_at = call.ended_at or datetime.now(UTC)

    def status_of(self, sid: str) -> CallStatus | None:
        leg = self.switchboard.leg(sid)
        if leg is not None:
            return leg.status
        call = self.find(sid)
        return call.status if call else None


def _authorised(header: str, account_sid: str, token: str | None) -> bool:
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return (
        user == account_sid and bool(password) and (token is None or secrets.compare_digest(password, token))
    )


class Fields(dict[str, list[str]]):
    """A request's form fields from (name, value) pairs, read as Starlette's FormData reads."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        for key, value in pairs:
            self.setdefault(key, []).append(value)

    def get(self, key: str, default: Any = None) -> Any:
        values = super().get(key)
        return values[0] if values else default

    def getlist(self, key: str) -> list[Any]:
        return list(super().get(key, []))

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key)[0]


Answer = tuple[int, dict[str, Any]]  # the status code and the JSON body
# a request that must hang this many seconds first (the client times out)
Hang = float


class CallsApi:
    """The Calls resource on the fake's memory: the same answers and errors whether it is
    served over HTTP (create_fake_twilio) or called in this process by the SDK client the
    simulator gives the service (telephone.in_process_client), which skips the web
    framework: at a cohort's size that was most of each REST request."""

    def __init__(self, state: FakeTwilio) -> None:
        self.state = state

    def failure(self) -> Answer | Hang | None:
        state = self.state
        with state.lock:
            queued = state.failures.pop(0) if state.failures else None
        if isinstance(queued, float):
            return queued
        if queued is not None:
            return queued, error_body(queued, {429: 20429}.get(queued, 20500))
        return None

    def authorised(self, account_sid: str, authorization: str) -> bool:
        return _authorised(authorization, account_sid, self.state.auth_token)

    def create(self, account_sid: str, form: Fields) -> Answer:
        state = self.state
        to, from_ = str(form.get("To", "")).strip(), str(form.get("From", "")).strip()
        url, twiml = str(form.get("Url", "")).strip(), str(form.get("Twiml", "")).strip()
        if not to:
            return 400, error_body(400, 21201)
        if not from_:
            return 400, error_body(400, 21213)
        if not url and not twiml and not form.get("ApplicationSid"):
            return 400, error_body(400, 21205)
        if not to.startswith("+") or not to[1:].isdigit():
            return 400, error_body(400, 21211)
        timeout = str(form.get("Timeout", ""))
        call = PlacedCall(
            sid="CA" + secrets.token_hex(16),
            to=to,
            from_=from_,
            url=url,
            status_callback=str(form["StatusCallback"]) if "StatusCallback" in form else None,
            status_callback_event=[str(v) for v in form.getlist("StatusCallbackEvent")],
            machine_detection=str(form["MachineDetection"]) if "MachineDetection" in form else None,
            account_sid=account_sid,
            twiml=twiml or None,
            timeout=int(timeout) if timeout.isdigit() else None,
            started_at=datetime.now(UTC),
        )
        with state.lock:
            state.calls.append(call)
        # like Twilio, answer the API request first and ring the phone afterwards
        state.switchboard.place(call.url, call, _ring_here(state.on_call))
        return 201, _call_json(call)

    def update(self, sid: str, form: Fields) -> Answer:
        state = self.state
        status = state.status_of(sid)
        if status is None:
            return 404, error_body(404, 20404)
        url, twiml = str(form.get("Url", "")).strip(), str(form.get("Twiml", "")).strip()
        wanted = str(form.get("Status", "")).strip()
        leg = state.switchboard.leg(sid)
        if url or twiml:
            if status != CallStatus.IN_PROGRESS or leg is None:
                return 400, error_body(400, 21220)
            with state.lock:
                state.changes.append((sid, url or "twiml"))
            leg.redirect(url or None, twiml or None)
        elif wanted in (CallStatus.CANCELED, CallStatus.COMPLETED):
            # `canceled` ends a call that has not been answered; `completed` one that has
            ringing = status.rank < CallStatus.IN_PROGRESS.rank
            if status.is_terminal or (wanted == CallStatus.CANCELED) != ringing:
                return 400, error_body(400, 21220)
            with state.lock:
                state.changes.append((sid, wanted))
            if leg is not None:
                leg.end()
            else:
                placed = state.find(sid)
                if placed is not None:
                    placed.status = CallStatus(wanted)
        placed = state.find(sid)
        return 200, _call_json(placed) if placed else {"sid": sid, "status": state.status_of(sid)}

    def fetch(self, sid: str) -> Answer:
        placed = self.state.find(sid)
        if placed is None:
            return 404, error_body(404, 20404)
        return 200, _call_json(placed)

    def request(
        self, method: str, account_sid: str, sid: str | None, authorization: str, form: Fields
    ) -> Answer:
        """One request to Calls.json (sid None) or Calls/{sid}.json, in this process."""
        if not self.authorised(account_sid, authorization):
            return 401, error_body(401, 20003)
        if method == "GET":
            return self.fetch(sid) if sid is not None else (404, error_body(404, 20404))
        failed = self.failure()
        if isinstance(failed, float):
            time.sleep(failed)  # a request that hangs: the client times out
        elif failed is not None:
            return failed
        return self.create(account_sid, form) if sid is None else self.update(sid, form)


def create_fake_twilio(fake: FakeTwilio | None = None) -> FastAPI:
    state = fake or FakeTwilio()
    api = CallsApi(state)
    app = FastAPI(title="Fake Twilio Calls API")
    app.state.fake = state

    async def failure() -> Response | None:
        failed = api.failure()
        if isinstance(failed, float):
            await asyncio.sleep(failed)  # a request that hangs: the client times out
        elif failed is not None:
            return JSONResponse(failed[1], status_code=failed[0])
        return None

    def answer(answered: Answer) -> Response:
        return JSONResponse(answered[1], status_code=answered[0])

    async def refused(account_sid: str, request: Request) -> Response | None:
        """A change to a call: refused without the account's credentials, or failed as told."""
        if not api.authorised(account_sid, request.headers.get("authorization", "")):
            return twilio_error(401, 20003)
        return await failure()

    @app.post("/2010-04-01/Accounts/{account_sid}/Calls.json")
    async def create_call(account_sid: str, request: Request) -> Response:
        failed = await refused(account_sid, request)
        return failed if failed is not None else answer(api.create(account_sid, await _fields(request)))

    @app.post("/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json")
    async def update_call(account_sid: str, sid: str, request: Request) -> Response:
        failed = await refused(account_sid, request)
        return failed if failed is not None else answer(api.update(sid, await _fields(request)))

    @app.get("/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json")
    async def fetch_call(account_sid: str, sid: str, request: Request) -> Response:
        if not api.authorised(account_sid, request.headers.get("authorization", "")):
            return twilio_error(401, 20003)
        return answer(api.fetch(sid))

    @app.get("/2010-04-01/Accounts/{account_sid}/Recordings/{recording}")
    async def recording(account_sid: str, recording: str, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Basic "):
            return twilio_error(401, 20003)
        # a few bytes of silence in an MP3 frame header: enough for a player to accept
        return Response(FAKE_MP3, media_type="audio/mpeg")

    return app


async def _fields(request: Request) -> Fields:
    return Fields((key, str(value)) for key, value in (await request.form()).multi_items())


def _ring_here(on_call: Callable[[PlacedCall], None] | None) -> Callable[[object], None] | None:
    if on_call is None:
        return None

    def ring(call: object) -> None:
        assert isinstance(call, PlacedCall)
        on_call(call)

    return ring


FAKE_MP3 = bytes.fromhex("fffb9064") + bytes(413)


def _when(moment: datetime | None) -> str | None:
    return format_datetime(moment.astimezone(UTC)) if moment else None


def _call_json(call: PlacedCall) -> dict[str, Any]:
    return {
        "sid": call.sid,
        "account_sid": call.account_sid,
        "to": call.to,
        "from": call.from_,
        "status": call.status,
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "duration": None if call.duration is None else str(call.duration),
        "start_time": _when(call.started_at),
        "end_time": _when(call.ended_at),
        "uri": f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.sid}.json",
    }
