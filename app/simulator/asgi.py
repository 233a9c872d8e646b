"""Requests straight into an ASGI app in this process: the simulator's wire, without a network.

Twilio's requests to the service, and the service's requests to the fake REST API, are
played in-process by the tests and by `peerline simulate-cohort`. Starlette's TestClient
does that through httpx and a portal thread it starts for every request when it is not
used as a context manager (the SDK client of the fake REST API); httpx's ASGITransport
builds a full httpx request and response around each call. A simulated cohort makes
hundreds of thousands of requests, and those layers were a large part of each one.

Here a request is one ASGI call: the scope, one `http.request` message with the whole
body, and the answer collected from `send`. It is the same app, the same middleware, the
same routes, the same signature checks: only the client side is thinner. Each thread gets
an event loop of its own, kept for its life, so no request waits for another thread.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import quote_plus, urlsplit

from starlette.types import ASGIApp, Message

HOST = "testserver"


class Answered(Protocol):
    """An HTTP answer as the telephone reads it (an httpx.Response is one too)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...


class PhoneLine(Protocol):
    """Where the telephone sends Twilio's requests: an httpx.Client, a TestClient, or a
    DirectClient into an app in this process."""

    def post(self, url: str, *, data: dict[str, str], headers: dict[str, str]) -> Answered: ...


@dataclass
class Answer:
    """What the app answered: the parts of an HTTP response the simulator reads."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass
class _Loops:
    """One event loop per thread that sends requests, closed together at the end."""

    local: threading.local = field(default_factory=threading.local)
    made: list[asyncio.AbstractEventLoop] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mine(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop | None = getattr(self.local, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            self.local.loop = loop
            with self.lock:
                self.made.append(loop)
        return loop

    def close(self) -> None:
        with self.lock:
            made, self.made = self.made, []
        for loop in made:
            if not loop.is_running():
                loop.close()


class DirectClient:
    """Sends requests to `app` as one ASGI call each, on the calling thread's own loop.

    `post(url, data=..., headers=...)` is the part of httpx.Client the telephone uses; `url`
    may be a path or an absolute URL (its host is ignored: everything goes to `app`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests = 0  # how many were sent, for the cohort's report
        self._loops = _Loops()

    def post(self, url: str, *, data: Mapping[str, str], headers: Mapping[str, str]) -> Answer:
        return self.request("POST", url, body=form_body(data), headers=headers, form=True)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        form: bool = False,
    ) -> Answer:
        parts = urlsplit(url)
        raw = [(b"host", HOST.encode())]
        if form:
            raw.append((b"content-type", b"application/x-www-form-urlencoded"))
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": parts.path or "/",
            "raw_path": (parts.path or "/").encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": raw,
            "server": (HOST, 80),
            "client": ("127.0.0.1", 50000),
            "state": {},
        }
        self.requests += 1
        return self._loops.mine().run_until_complete(_call(self.app, scope, body))

    def close(self) -> None:
        self._loops.close()

    def __enter__(self) -> DirectClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


async def _call(app: ASGIApp, scope: dict[str, Any], body: bytes) -> Answer:
    sent = False
    answered = asyncio.Event()
    status = 500
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            # the body has been read: the client stays until the answer is complete, then goes
            await answered.wait()
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", []):
                headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    await app(scope, receive, send)
    return Answer(status, headers, b"".join(chunks))


# what `quote_plus` leaves as it is: such a value is its own encoding
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")


def form_body(data: Mapping[str, str]) -> bytes:
    """`urlencode(data).encode()`, byte for byte, for a form of strings: most names and
    values need no quoting, and `quote_plus` takes its slow general path for each of them
    (more than half of what a request cost this client; tests/test_fake_twilio.py compares)."""
    return "&".join(
        (k if _PLAIN.fullmatch(k) else _quoted(k)) + "=" + (v if _PLAIN.fullmatch(v) else _quoted(v))
        for k, v in data.items()
    ).encode()


@lru_cache(maxsize=1024)
def _quoted(text: str) -> str:
    # the values that need quoting repeat: a call's timestamps, its URLs, the steps' names
    return quote_plus(text)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
