"""Request bodies are bounded before they are read.

An unbounded form is parsed into memory whole: one 900 MB post grew the process by a
gigabyte and stalled the phone line. Twilio's own requests are a few kilobytes, so the
phone line's bound is small; a request to it that is over the bound still gets TwiML
(the spoken apology, nothing changed) when it carries a signature header, because a
live call must never hear an error; without one it is refused like any unsigned request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics

ARRIVED = "peerline.arrived"
BODY = "peerline.body"
TWILIO_MAX_BYTES = 64 * 1024
DEFAULT_MAX_BYTES = 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, *, twiml_apology: Callable[[], str]) -> None:
        self.app = app
        self.twiml_apology = twiml_apology

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # the phone line's deadline counts from here, not from when its handler starts:
            # time spent reading the body and waiting for the event loop counts too
            scope[ARRIVED] = time.monotonic()
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        twilio = scope["path"].startswith("/twilio/") or scope["path"] == "/twilio"
        limit = TWILIO_MAX_BYTES if twilio else DEFAULT_MAX_BYTES
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, send, twilio, signed=b"x-twilio-signature" in headers)
            return
        # no (or a small) declared length: read up to the bound, then hand the body on
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, send, twilio, signed=b"x-twilio-signature" in headers)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        # read once: the webhooks take it from here rather than through the replay below
        scope[BODY] = body
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, twilio: bool, *, signed: bool) -> None:
        if twilio and signed:
            metrics.apology_served("too_large")
            status, kind, text = 200, b"application/xml", self.twiml_apology().encode()
        elif twilio:
            metrics.signature_rejected()
            status, kind, text = 403, b"application/json", b'{"detail":"missing X-Twilio-Signature"}'
        else:
            status, kind, text = 413, b"application/json", b'{"detail":"request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(text)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": text})
