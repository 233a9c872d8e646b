# ruff: noqa: E501
"""Console pages at scale: 10,000 pairs and 1,000,000 calls; server time per page.

Each page is requested through the real app in-process, signed in as staff, and
timed from request to full body; target < 150 ms each.

    .venv/bin/python scripts/bench/console.py [--database-url URL] [--pairs 10000] [--calls 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.console.session import COOKIE
from scripts.bench.data import NOW, bench_app, build_people_and_pairs, fresh_database, load_calls

PAGES = [
    "/console/",
    "/console/pairs",
    "/console/pairs?q=P12",
    "/console/pairs/17",
    "/console/participants",
    "/console/participants/33",
    "/console/messages",
    "/console/attention",
    "/console/audit",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    url, engine = fresh_database(args.database_url, "console")
    t0 = time.perf_counter()
    last_contacts = build_people_and_pairs(engine, args.pairs)
    load_calls(engine, 0, args.calls, args.pairs, last_contacts)
    with engine.begin() as conn:  # a year of messages, flags and audit, in proportion
        conn.execute(
            text(
                "INSERT INTO care_team_message (recording_sid, participant_id, call_id, duration_seconds, received_at) "
                "SELECT 'RE' || id, initiator_id, id, 40, started_at FROM call WHERE id % 500 = 0"
            )
        )
        conn.execute(
            text(
                "INSERT INTO attention_flag (pair_id, period_start, reason, raised_at) "
                "SELECT id, started_at, 'no contact for 2 weeks; 4 reminder calls unanswered', started_at FROM pair WHERE id % 40 = 0"
            )
        )
        conn.execute(
            text(
                "INSERT INTO audit_event (at, actor, action, target) "
                "SELECT started_at, 'nurse@clinic.example.org', 'calls.read', 'pair:' || pair_id FROM call WHERE id % 20 = 0"
            )
        )
    print(
        f"database {engine.dialect.name}: {args.pairs:,} pairs, {args.calls:,} calls; built in {time.perf_counter() - t0:.0f} s"
    )
    engine.dispose()

    app, user = bench_app(url, "admin")
    cookie, _ = app.state.session_keys.issue(user.id, NOW)
    worst = 0.0
    with TestClient(app) as client:
        client.cookies.set(COOKIE, cookie, path="/console")
        print(f"{'page':32s} {'median':>9s} {'p95':>9s}")
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                client.get(path)
                times.append(time.perf_counter() - t)
            p95 = statistics.quantiles(times, n=20)[18] * 1000
            worst = max(worst, p95)
            print(f"{path:32s} {statistics.median(times) * 1000:7.1f} ms {p95:7.1f} ms")
    print(f"slowest page p95: {worst:.1f} ms (target < 150 ms)")


if __name__ == "__main__":
    main()
