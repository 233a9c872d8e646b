"""A lean HTTP/1.1 load client for the webhook bench: keep-alive connections on asyncio.

httpx spends more CPU per request than a bare FastAPI app does to answer it, so at
thousands of requests a second the client, not the server, would be measured. This
client writes pre-built request bytes on raw connections and reads just enough of the
answer (status line, Content-Length, body) to check it.

Two shapes of load:
- closed loop: N connections, each sends its next request as soon as the previous
  answer is in (throughput and latency at a fixed concurrency);
- open loop: requests start on a fixed schedule whatever the server does, and each
  latency counts from the moment its request was due (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


@dataclass
class Answer:
    status: int
    body: bytes


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    late_starts: int = 0  # open loop: requests the client itself could not start on time
    lost: int = 0  # connections that closed or could not be made
    retried: int = 0  # requests sent again after a kept-alive connection was closed under them


def signed_request(
    validator: RequestValidator, base: str, host: str, path: str, form: dict[str, str]
) -> bytes:
    """A POST exactly as Twilio signs it: the full URL plus the form's parameters."""
    body = urlencode(form).encode()
    signature = validator.compute_signature(base + path, form)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_answer()

    def _try_answer(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(Answer(status, body))

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        if self.transport is None or self.closed or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


async def connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(Connection, host, port)
    return protocol


Check = Callable[[Answer], bool]


async def closed_loop(
    host: str, port: int, requests: Iterator[bytes], *, connections: int, check: Check
) -> Result:
    """Every connection sends its next request as soon as its answer is in."""
    result = Result()
    conns = [await connect(host, port) for _ in range(connections)]

    async def worker(conn: Connection) -> None:
        for data in requests:
            t0 = time.perf_counter()
            try:
                answer = await conn.request(data)
            except ConnectionError:
                result.errors += 1
                return
            result.latencies.append(time.perf_counter() - t0)
            if not check(answer):
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(conn) for conn in conns))
    result.elapsed = time.perf_counter() - started
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return result


# A flow makes one request at a time; its next request may depend on earlier answers.
Flow = Callable[[Callable[[bytes], Awaitable[Answer]]], Awaitable[None]]


async def open_loop(
    host: str,
    port: int,
    next_request: Callable[[], Awaitable[tuple[bytes, Check] | None]],
    *,
    rate: float,
    seconds: float,
) -> Result:
    """Start a request every 1/rate seconds, on whichever connection is free (or a new one).

    `next_request` hands out the next request that is ready to be sent (a step of a call
    whose earlier step has been answered, or the first step of a new call).
    """
    result = Result()
    idle: list[Connection] = []
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        item = await next_request()
        if item is None:
            return
        data, check = item
        while idle and (idle[-1].closed or idle[-1].transport is None or idle[-1].transport.is_closing()):
            idle.pop()  # the server closed it after its keep-alive timeout
        reused = bool(idle)
        try:
            conn = idle.pop() if idle else await connect(host, port)
            answer = await conn.request(data)
        except OSError:
            if not reused:
                result.errors += 1
                result.lost += 1
                return
            # a kept-alive connection the server closed just as the request went out: what
            # any HTTP client does, try once more on a new one (webhooks are idempotent)
            result.retried += 1
            try:
                conn = await connect(host, port)
                answer = await conn.request(data)
            except OSError:
                result.errors += 1
                result.lost += 1
                return
        result.latencies.append(time.perf_counter() - due)
        if not check(answer):
            result.errors += 1
        if not conn.closed:
            idle.append(conn)

    started = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.01:
            result.late_starts += 1
        task = loop.create_task(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    result.elapsed = time.perf_counter() - started
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return result
