"""`peerline simulate-cohort` at the issue's size: 200 pairs x 26 weeks, seconds and requests/s.

The command runs as a user runs it, in a process of its own, into a fresh database
(every call through the real signed webhooks, conference callbacks and the fake REST
API, in that process). Reported: wall and CPU seconds, the signed requests it sent and
requests/s, calls, and the time its reminder sweeps took.

Baseline, in the same run: the service's own floor, the wall time of signed status
callbacks (the most common request) sent to the app in this process over httpx's
ASGITransport with nothing simulated. `requests x floor` is what any simulator of these
requests must pay; the ratio says how far above it the simulation is.

The machine is shared: the load average is printed before and after.

    .venv/bin/python scripts/bench/cohort.py [--pairs 200] [--weeks 26] [--seed 1]
        [--floor-requests 2000] [--database-url URL]

`--database-url`: an empty, migrated database (e.g. PostgreSQL) instead of a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from twilio.request_validator import RequestValidator

from scripts.bench.data import fresh_database

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "https://peerline.example.org"
TOKEN = "bench-auth-token"
SECRET = "bench-secret-key-bench-secret-key-bench"
SIMULATED = re.compile(r"simulated .*: (\d+) calls .* (\d+) requests in ([\d.]+) s")


def simulate(pairs: int, weeks: int, seed: int, url: str | None) -> dict[str, float]:
    """`peerline simulate-cohort` in a child process; what it printed, and its CPU time."""
    database_url, engine = fresh_database(url, f"cohort-{pairs}x{weeks}")
    engine.dispose()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": PUBLIC,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SECRET_KEY": SECRET,
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore",
    }
    command = [sys.executable, "-c", "from app.cli import main; main()", "simulate-cohort"]
    command += ["--pairs", str(pairs), "--weeks", str(weeks), "--seed", str(seed)]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:  # anything the command writes stays out of the repo
        done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = SIMULATED.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"simulate-cohort failed ({done.returncode}): {done.stdout}{done.stderr}")
    sweep = re.search(r"reminder sweeps: ([\d.]+) s", done.stdout)
    return {
        "calls": int(found.group(1)),
        "requests": int(found.group(2)),
        "seconds": float(found.group(3)),
        "process_seconds": wall,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime),
        "sweep_seconds": float(sweep.group(1)) if sweep else float("nan"),
    }


def service_floor(requests: int) -> float:
    """Seconds per signed status callback through the real app, nothing simulated."""
    from app.main import create_app
    from app.settings import Settings

    database_url, engine = fresh_database(None, "cohort-floor")
    engine.dispose()
    app = create_app(
        Settings(
            database_url=database_url,
            public_base_url=PUBLIC,
            twilio_auth_token=TOKEN,
            secret_key=SECRET,
            scheduler_enabled=False,
        )
    )
    sign = RequestValidator(TOKEN).compute_signature

    async def post_all() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            began = time.perf_counter()
            for n in range(requests):
                # a call the service has not seen ends: it writes the call's row
                form = {"CallSid": f"CA{n:032d}", "CallStatus": "completed", "CallDuration": "0"}
                signature = sign(PUBLIC + "/twilio/status", form)
                answer = await client.post(
                    "/twilio/status", data=form, headers={"X-Twilio-Signature": signature}
                )
                assert answer.status_code == 200, answer.text
            return (time.perf_counter() - began) / requests

    try:
        return asyncio.run(post_all())
    finally:
        app.state.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--floor-requests", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="an empty, migrated database")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    floor = service_floor(args.floor_requests)
    print(f"service floor: {1000 * floor:.2f} ms a signed status callback ({args.floor_requests} sent)")

    run = simulate(args.pairs, args.weeks, args.seed, args.database_url)
    seconds, requests = run["seconds"], run["requests"]
    print(
        f"simulate-cohort {args.pairs} x {args.weeks}: {seconds:.1f} s wall "
        f"({run['process_seconds']:.1f} s with start-up, {run['cpu_seconds']:.1f} s CPU), "
        f"{requests:.0f} requests, {requests / seconds:.0f} requests/s, "
        f"{1000 * seconds / requests:.2f} ms each, "
        f"{run['calls']:.0f} calls, reminder sweeps {run['sweep_seconds']:.1f} s"
    )
    ratio = seconds / (requests * floor)
    print(f"requests x floor = {requests * floor:.1f} s; the simulation takes {ratio:.2f}x that")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
