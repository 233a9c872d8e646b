"""A local stand-in for Twilio's Calls resource, for development and tests.

`POST /2010-04-01/Accounts/{AccountSid}/Calls.json` answers like Twilio (201 and the
call as JSON). Each call is kept, and can then be "answered": driven through the
service's webhooks by `app.telephone.Telephone`, in the terminal (`peerline
fake-twilio`) or by a test. No internet and no Twilio account needed.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


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


@dataclass
class FakeTwilio:
    """The fake's memory, and failures queued for the next requests (429, 500, or a hang)."""

    calls: list[PlacedCall] = field(default_factory=list)
    failures: list[int | float] = field(default_factory=list)
    on_call: Callable[[PlacedCall], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def hang_next(self, seconds: float) -> None:
        self.failures.append(float(seconds))


def create_fake_twilio(fake: FakeTwilio | None = None) -> FastAPI:
    state = fake or FakeTwilio()
    app = FastAPI(title="Fake Twilio Calls API")
    app.state.fake = state

    @app.post("/2010-04-01/Accounts/{account_sid}/Calls.json")
    async def create_call(account_sid: str, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Basic "):
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if isinstance(failure, float):
            await asyncio.sleep(failure)  # a request that hangs: the client times out
        elif failure is not None:
            body = {"code": 20429 if failure == 429 else 20500, "message": "fake failure", "status": failure}
            return JSONResponse(body, status_code=failure)
        form = await request.form()
        to = str(form.get("To", ""))
        if not to.startswith("+"):
            return JSONResponse({"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, 400)
        call = PlacedCall(
            sid="CA" + secrets.token_hex(16),
            to=to,
            from_=str(form.get("From", "")),
            url=str(form.get("Url", "")),
            status_callback=str(form["StatusCallback"]) if "StatusCallback" in form else None,
            status_callback_event=[str(v) for v in form.getlist("StatusCallbackEvent")],
            machine_detection=str(form["MachineDetection"]) if "MachineDetection" in form else None,
            account_sid=account_sid,
        )
        with state.lock:
            state.calls.append(call)
        if state.on_call is not None:
            # like Twilio, answer the API request first and ring the phone afterwards
            threading.Thread(target=state.on_call, args=(call,), daemon=True).start()
        return JSONResponse(_call_json(call), status_code=201)

    @app.get("/2010-04-01/Accounts/{account_sid}/Recordings/{recording}")
    async def recording(account_sid: str, recording: str, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Basic "):
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        # a few bytes of silence in an MP3 frame header: enough for a player to accept
        return Response(FAKE_MP3, media_type="audio/mpeg")

    return app


FAKE_MP3 = bytes.fromhex("fffb9064") + bytes(413)


def _call_json(call: PlacedCall) -> dict[str, Any]:
    return {
        "sid": call.sid,
        "account_sid": call.account_sid,
        "to": call.to,
        "from": call.from_,
        "status": "queued",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.sid}.json",
    }
