"""Webhook speed: signed POST /twilio/voice for a known caller, full path, against a bare app.

Both servers run under the same uvicorn settings on this machine; rounds alternate
between them so noise hits both alike. Prints requests/s and p99 for each and the ratios.

    .venv/bin/python scripts/bench/webhook.py [--rounds 6] [--requests 300] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
TOKEN = "bench-auth-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            httpx.post(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"server at {url} did not start")


def serve(module: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            PY,
            "-m",
            "uvicorn",
            module,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            "1",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_round(client: httpx.Client, base: str, n: int) -> tuple[float, list[float]]:
    validator = RequestValidator(TOKEN)
    url = base + "/twilio/voice"
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        form = {
            "CallSid": "CA" + secrets.token_hex(16),
            "From": "+16175550101",
            "To": "+18005550100",
            "CallStatus": "ringing",
            "Direction": "inbound",
            "AccountSid": "AC" + "0" * 32,
        }
        headers = {"X-Twilio-Signature": validator.compute_signature(url, form)}
        t0 = time.perf_counter()
        response = client.post(url, data=form, headers=headers)
        latencies.append(time.perf_counter() - t0)
        # the same caller again and again: while the partner's leg of an earlier call is still
        # being placed, the partner is on another call and is not rung; both are the full path
        assert response.status_code == 200, response.text[:300]
        assert b"<Dial" in response.content or b"another call" in response.content, response.text[:300]
    return time.perf_counter() - started, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="peerline-bench-")
    peer_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.db",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{peer_port}",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SECRET_KEY": "bench-secret-key-bench-secret-key-bench",
        "TWILIO_PHONE_NUMBER": "+18005550100",
        "SCHEDULER_ENABLED": "false",
        "PEERLINE_DEV_SECRETS": f"{tmp}/secrets.json",
        "PYTHONPATH": str(ROOT),
    }
    peerline = [PY, "-m", "app.cli"]
    subprocess.run([*peerline, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    for name, phone in (("Ana", "+16175550101"), ("Bea", "+16175550102")):
        subprocess.run(
            [*peerline, "participant", "add", "--name", name, "--phone", phone],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    subprocess.run([*peerline, "pair", "add", "1", "2"], env=env, cwd=ROOT, check=True, capture_output=True)

    write_port = free_port()
    bare_db = args.database_url or f"sqlite:///{tmp}/bare.db"
    servers = [
        serve("app.main:app", peer_port, env),
        serve("scripts.bench.bare_app:app", bare_port, env),
        serve("scripts.bench.bare_app:write_app", write_port, {**env, "BARE_DATABASE_URL": bare_db}),
    ]
    try:
        bases = {
            "peerline": f"http://127.0.0.1:{peer_port}",
            "bare": f"http://127.0.0.1:{bare_port}",
            "bare+write": f"http://127.0.0.1:{write_port}",
        }
        for base in bases.values():
            wait_up(base + "/twilio/voice")
        totals = {name: 0.0 for name in bases}
        lat: dict[str, list[float]] = {name: [] for name in bases}
        with httpx.Client() as client:
            for base in bases.values():  # warm-up
                run_round(client, base, 50)
            for r in range(args.rounds):
                order = list(bases.items()) if r % 2 == 0 else list(reversed(list(bases.items())))
                for name, base in order:
                    elapsed, latencies = run_round(client, base, args.requests)
                    totals[name] += elapsed
                    lat[name].extend(latencies)
        n = args.rounds * args.requests
        rps = {name: n / totals[name] for name in bases}
        print(f"database: {env['DATABASE_URL'].split(':')[0]}  requests per server: {n}")
        for name in bases:
            print(f"{name:10s} {rps[name]:8.1f} req/s   p99 {p99(lat[name]):6.2f} ms")
        print(f"throughput ratio peerline/bare: {rps['peerline'] / rps['bare']:.2f}  (target >= 0.6)")
        print(f"p99 ratio peerline/bare:        {p99(lat['peerline']) / p99(lat['bare']):.2f}  (target <= 2)")
        print(f"throughput ratio peerline/bare+write: {rps['peerline'] / rps['bare+write']:.2f}")
        print(f"p99 ratio peerline/bare+write:        {p99(lat['peerline']) / p99(lat['bare+write']):.2f}")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
