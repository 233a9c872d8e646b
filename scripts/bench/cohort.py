"""`peerline simulate-cohort` at the issue's size: 200 pairs x 26 weeks, seconds and requests/s.

Every call goes through the real signed webhooks, conference callbacks and the fake REST
API in this process, as `peerline simulate-cohort` plays them. Reported:

- the whole run at full size on the simulator as it is (wall and CPU seconds, simulated
  Twilio requests and requests/s, calls, and how much of the time the reminder sweep took);
- a comparison in the same run, on a smaller cohort, with the simulator's previous wire
  (httpx around ASGITransport for the webhooks, a TestClient per request for the fake
  REST API, as before DirectClient), rounds alternating so machine noise falls on both.

The machine is shared: the load average is printed before and after; compare ratios.

    .venv/bin/python scripts/bench/cohort.py [--pairs 200] [--weeks 26] [--seed 1]
        [--compare-pairs 20] [--rounds 1] [--database-url URL]

`--database-url` (an empty database, e.g. PostgreSQL) is used for the full-size run only;
by default every run gets a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from fastapi import FastAPI

from app.services import sweep as sweep_service
from app.settings import Settings
from app.simulator import cohort, telephone
from app.simulator.fake_twilio import FakeTwilio, create_fake_twilio
from scripts.bench.data import fresh_database

START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass
class Run:
    wire: str
    pairs: int
    weeks: int
    seconds: float
    cpu_seconds: float
    requests: int
    calls: int
    sweep_seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"{self.wire:>8} {self.pairs:>4} x {self.weeks:<3} {self.seconds:7.1f} s wall "
            f"{self.cpu_seconds:7.1f} s cpu  {self.requests:>7} requests  {self.per_second:6.0f} req/s  "
            f"{1000 * self.seconds / self.requests:5.2f} ms/req  {self.calls:>6} calls  "
            f"sweep {self.sweep_seconds:5.1f} s ({100 * self.sweep_seconds / self.seconds:.0f} %)"
        )


# ---------------------------------------------------------------- the previous wire, for comparison


class _HttpxTransport(httpx.BaseTransport):
    """How cohort.py sent webhooks before DirectClient: httpx around ASGITransport, one loop."""

    def __init__(self, app: FastAPI) -> None:
        self.asgi = httpx.ASGITransport(app=app)
        self.loop = asyncio.new_event_loop()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> tuple[int, httpx.Headers, bytes]:
            response = await self.asgi.handle_async_request(request)
            return response.status_code, response.headers, await response.aread()

        status, headers, body = self.loop.run_until_complete(send())
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        self.loop.close()


def _httpx_client(app: FastAPI) -> httpx.Client:
    client = httpx.Client(transport=_HttpxTransport(app), base_url="http://testserver")
    client.app = app  # type: ignore[attr-defined]
    return client


def _testclient_rest(fake: FakeTwilio, account_sid: str, auth_token: str) -> Any:
    """How the fake REST API was reached before: a TestClient request (and its portal thread) each."""
    from starlette.testclient import TestClient
    from twilio.http import HttpClient
    from twilio.http.response import Response as TwilioResponse
    from twilio.rest import Client

    asgi = TestClient(create_fake_twilio(fake))

    class InProcess(HttpClient):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(logger=logging.getLogger(__name__), is_async=False)

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
            form = {
                k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in (data or {}).items()
            }
            answer = asgi.request(
                method, urlsplit(uri).path, params=params, data=form, headers=headers, auth=auth
            )
            return TwilioResponse(answer.status_code, answer.text, answer.headers)

    return Client(account_sid, auth_token, http_client=InProcess())


@contextmanager
def previous_wire() -> Iterator[None]:
    saved = cohort.DirectClient, cohort.rest_client, telephone.in_process_client
    cohort.DirectClient = _httpx_client  # type: ignore[assignment,misc]
    cohort.rest_client = telephone.in_process_client = _testclient_rest  # type: ignore[assignment]
    try:
        yield
    finally:
        cohort.DirectClient, cohort.rest_client, telephone.in_process_client = saved  # type: ignore[misc]


# ---------------------------------------------------------------- counting and timing


@contextmanager
def counted() -> Iterator[dict[str, float]]:
    """Counts the simulated Twilio requests (every signed webhook) and times the sweeps."""
    tally = {"requests": 0.0, "sweep": 0.0}
    post, run_sweep = telephone.Telephone.post, sweep_service.sweep

    def counting_post(self: telephone.Telephone, url: str, params: dict[str, str]) -> Any:
        tally["requests"] += 1
        return post(self, url, params)

    def timed_sweep(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return run_sweep(*args, **kwargs)
        finally:
            tally["sweep"] += time.perf_counter() - began

    telephone.Telephone.post = counting_post  # type: ignore[method-assign]
    sweep_service.sweep = timed_sweep
    try:
        yield tally
    finally:
        telephone.Telephone.post = post  # type: ignore[method-assign]
        sweep_service.sweep = run_sweep


def simulate(wire: str, pairs: int, weeks: int, seed: int, url: str | None) -> Run:
    database_url, engine = fresh_database(url, f"cohort-{wire}-{pairs}")
    engine.dispose()
    settings = Settings(
        database_url=database_url,
        public_base_url="https://peerline.example.org",
        twilio_auth_token="bench-auth-token",
        twilio_phone_number="+18005550100",
        secret_key="bench-secret-key-bench-secret-key-bench",
        scheduler_enabled=False,
    )
    switch: Callable[[], Any] = previous_wire if wire == "previous" else nullcontext
    with switch(), counted() as tally:
        began, cpu = time.perf_counter(), time.process_time()
        report = cohort.simulate(settings, pairs=pairs, weeks=weeks, seed=seed, start=START)
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    return Run(wire, pairs, weeks, seconds, cpu_seconds, int(tally["requests"]), report.calls, tally["sweep"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--compare-pairs", type=int, default=20, help="cohort size for the comparison; 0: none"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating comparison rounds")
    parser.add_argument("--database-url", default=None, help="an empty database for the full-size run")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    if args.compare_pairs:
        runs: dict[str, list[Run]] = {"previous": [], "direct": []}
        for _ in range(args.rounds):
            for wire in ("previous", "direct"):
                run = simulate(wire, args.compare_pairs, args.weeks, args.seed, None)
                runs[wire].append(run)
                print(run.line(), flush=True)
        before = statistics.median(r.seconds for r in runs["previous"])
        after = statistics.median(r.seconds for r in runs["direct"])
        ratio = after / before
        print(f"comparison ({args.compare_pairs} pairs): direct / previous wire = {ratio:.2f} of the time")

    full = simulate("direct", args.pairs, args.weeks, args.seed, args.database_url)
    print(full.line())
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
