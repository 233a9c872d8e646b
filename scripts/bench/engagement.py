# ruff: noqa: E501
"""Engagement figures at scale: 10,000 pairs and 1,000,000 calls; server time per request.

The programme is shaped like a real one rather than uniform noise, because the figures'
cost depends on the shape: pairs made over fourteen months (so every month since
pairing has pairs in it), a call rate that decays month by month as in the trials, a
third of pairs that hardly ever get through, reminder calls with their reminders, and
care-team messages. `GET /api/v1/stats/engagement` (whole programme, and one cohort)
and `GET /api/v1/pairs/{id}/engagement` are requested through the real app in-process,
signed in as a nurse (an audit row is written per request); target < 200 ms.

    .venv/bin/python scripts/bench/engagement.py [--database-url URL] [--pairs 10000] [--calls 1000000]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from app.api.routes import engagement as engagement_routes
from app.models import StaffUser
from app.services import engagement
from scripts.bench.data import NOW, fresh_database, ts

DAY = timedelta(days=1)
# the trials' decay: calls per pair per month, month 1 to 6 and on
RATE = [2.4, 1.9, 1.5, 1.2, 1.0, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5]


def _copy_or_insert(
    engine: Engine, table: str, columns: list[str], rows: Iterator[tuple[object, ...]]
) -> None:
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        if sqlite:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})"
            batch: list[tuple[object, ...]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == 100_000:
                    cur.executemany(sql, batch)
                    batch.clear()
            if batch:
                cur.executemany(sql, batch)
        else:
            cur.execute("SET LOCAL statement_timeout = 0")  # a bulk load is not a request
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


def build(engine: Engine, pairs: int, calls: int, seed: int = 7) -> None:
    """Participants, pairs, calls, reminders with their calls, and messages."""
    sqlite = engine.dialect.name == "sqlite"
    rng = random.Random(seed)
    started: list[datetime] = []
    ended: list[datetime | None] = []
    keen: list[float] = []  # how much more or less than the trials' mean a pair calls
    for _ in range(pairs):
        start = NOW - DAY * rng.uniform(0, 420)
        started.append(start)
        stop = start + DAY * rng.uniform(30, 400) if rng.random() < 0.2 else None
        ended.append(stop if stop is not None and stop < NOW else None)
        keen.append(0.05 if rng.random() < 0.35 else rng.lognormvariate(0, 0.6))

    def people() -> Iterator[tuple[object, ...]]:
        for i in range(1, 2 * pairs + 1):
            lang = "es" if i % 9 == 0 else "en"
            yield (
                i,
                f"P{i}",
                b"x",
                f"{i:064x}",
                "America/New_York",
                lang,
                "active",
                ts(started[(i - 1) // 2], sqlite),
            )

    def pair_rows() -> Iterator[tuple[object, ...]]:
        for p in range(1, pairs + 1):
            stop = ended[p - 1]
            yield (p, 2 * p - 1, 2 * p, ts(started[p - 1], sqlite), ts(stop, sqlite) if stop else None, "")

    _copy_or_insert(
        engine,
        "participant",
        ["id", "name", "phone_ciphertext", "phone_index", "timezone", "language", "status", "created_at"],
        people(),
    )
    _copy_or_insert(
        engine,
        "pair",
        ["id", "participant_a_id", "participant_b_id", "started_at", "ended_at", "notes"],
        pair_rows(),
    )

    # Each pair's expected calls, month by month, scaled so the whole programme has `calls`.
    weights: list[list[float]] = []
    for p in range(pairs):
        span = ((ended[p] or NOW) - started[p]) / DAY
        months = math.ceil(span / 30)
        weights.append(
            [RATE[min(m, len(RATE) - 1)] * keen[p] * min(1.0, (span - 30 * m) / 30) for m in range(months)]
        )
    total = sum(sum(w) for w in weights)
    # Reminder calls come from reminders: one per participant per quiet period, rung once or more.
    reminder_rows: list[tuple[object, ...]] = []
    call_cols = [
        "twilio_call_sid", "kind", "pair_id", "initiator_id", "callee_id", "started_at", "bridged_at",
        "accepted_at", "duration_seconds", "outcome", "id_tries", "reminder_id", "status", "end_reason",
    ]  # fmt: skip

    def call_rows() -> Iterator[tuple[object, ...]]:
        n = 0
        for p in range(pairs):
            a, b = 2 * p + 1, 2 * p + 2
            for m, w in enumerate(weights[p]):
                expected = w * calls / total
                count = int(expected) + (rng.random() < expected - int(expected))
                for _ in range(count):
                    at = started[p] + DAY * (30 * m + rng.uniform(0, 30))
                    if at >= (ended[p] or NOW):
                        continue
                    who = a if rng.random() < 0.6 else b
                    roll = rng.random()
                    accepted = roll < 0.55 * min(1.0, keen[p] * 4)
                    if accepted:
                        seconds = (
                            int(rng.lognormvariate(6.6, 0.7)) if rng.random() < 0.85 else rng.randrange(5, 60)
                        )
                        outcome = "contact" if seconds >= 60 else "short"
                    else:
                        seconds, outcome = (
                            0,
                            rng.choice(["no_answer", "declined", "busy", "quiet_hours", "no_answer"]),
                        )
                    kind, reminder_id = "peer", None
                    if rng.random() < 0.05:  # a reminder call answered by a person, who pressed 1
                        kind = "reminder"
                        reminder_rows.append(
                            (
                                len(reminder_rows) + 1,
                                who,
                                p + 1,
                                ts(at, sqlite),
                                "answered",
                                1,
                                ts(at, sqlite),
                                f"CA{n:032x}",
                                ts(at, sqlite),
                                ts(at, sqlite),
                            )
                        )
                        reminder_id = len(reminder_rows)
                    moment = ts(at, sqlite)
                    yield (
                        f"CA{n:032x}", kind, p + 1, who, a + b - who, moment,
                        moment if outcome in ("contact", "short", "declined") else None,
                        moment if accepted else None, seconds, outcome, 0, reminder_id,
                        "no-answer" if outcome == "no_answer" else "busy" if outcome == "busy" else "completed", None,
                    )  # fmt: skip
                    n += 1
            # quiet periods: a reminder to each partner, rung but not always answered
            for k in range(int(len(weights[p]) * (1 - min(keen[p], 1.0)) * 2)):
                at = started[p] + DAY * (7 + 21 * k + rng.uniform(0, 3))
                if at >= (ended[p] or NOW):
                    break
                for who in (a, b):
                    state = rng.choice(["answered", "unanswered", "machine", "answered"])
                    reminder_rows.append(
                        (
                            len(reminder_rows) + 1,
                            who,
                            p + 1,
                            ts(at, sqlite),
                            state,
                            1,
                            ts(at, sqlite),
                            f"CA{n:032x}",
                            ts(at, sqlite),
                            ts(at, sqlite),
                        )
                    )
                    moment = ts(at, sqlite)
                    yield (
                        f"CA{n:032x}",
                        "reminder",
                        p + 1,
                        who,
                        None,
                        moment,
                        None,
                        None,
                        0,
                        "declined" if state == "answered" else "no_answer",
                        0,
                        len(reminder_rows),
                        "no-answer" if state == "unanswered" else "completed",
                        "answering machine" if state == "machine" else None,
                    )
                    n += 1

    # reminders first (calls refer to them), so the call rows are made, then the reminders written
    made = list(call_rows())
    _copy_or_insert(
        engine,
        "reminder",
        [
            "id",
            "participant_id",
            "pair_id",
            "period_start",
            "state",
            "attempts",
            "next_attempt_at",
            "call_sid",
            "created_at",
            "updated_at",
        ],
        iter(reminder_rows),
    )
    _copy_or_insert(engine, "call", call_cols, iter(made))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO care_team_message (recording_sid, participant_id, call_id, duration_seconds, received_at) "
                "SELECT 'RE' || id, initiator_id, id, 40, started_at FROM call WHERE id % 97 = 0"
            )
        )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _app(url: str) -> tuple[FastAPI, StaffUser]:
    """The real app on that database, its clock at NOW, and a nurse's account: made on the
    first run, found again when the database is reused (--reuse)."""
    from app.main import create_app
    from app.services import staff
    from app.settings import Settings

    app = create_app(
        Settings(
            database_url=url,
            secret_key="bench-secret-key-bench-secret-key-bench",
            twilio_auth_token="bench",
            scheduler_enabled=False,
        )
    )
    app.state.context.clock = lambda: NOW
    email = "engagement-nurse@clinic.example.org"
    with app.state.sessionmaker() as db:
        user = db.scalar(select(StaffUser).where(StaffUser.email == email))
        if user is None:
            user = staff.create_user(db, email=email, password="bench-password-long", role="nurse", now=NOW)
            db.commit()
    return app, user


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="the database already holds the data")
    args = parser.parse_args()
    if args.reuse:
        from app.settings import Settings

        url = Settings(database_url=args.database_url).database_url
    else:
        url, engine = fresh_database(args.database_url, "engagement")
        t0 = time.perf_counter()
        build(engine, args.pairs, args.calls)
        with engine.connect() as conn:
            made = conn.execute(text("SELECT count(*) FROM call")).scalar()
        print(
            f"database {engine.dialect.name}: {args.pairs:,} pairs, {made:,} calls; built in {time.perf_counter() - t0:.0f} s"
        )
        engine.dispose()

    app, user = _app(url)
    if not any(getattr(r, "path", "") == "/api/v1/stats/engagement" for r in app.routes):
        app.include_router(engagement_routes.router, prefix="/api/v1")  # until /api/v1 includes it

    # the baseline: the same figures aggregated from the whole history, as a request would
    # without the kept (settled) history
    settings = app.state.context.settings
    fresh = []
    for _ in range(max(1, args.repeat // 10)):
        with app.state.sessionmaker() as db:
            t = time.perf_counter()
            engagement.programme(
                db, now=NOW, tz=settings.programme_timezone, engaged_when=settings.engaged_when
            )
            fresh.append(time.perf_counter() - t)
    print(f"baseline, whole history aggregated per request: median {statistics.median(fresh) * 1000:.0f} ms")

    cohort = (NOW - timedelta(days=200)).strftime("%Y-%m")
    paths = [
        "/api/v1/stats/engagement",
        f"/api/v1/stats/engagement?cohort={cohort}",
        "/api/v1/pairs/17/engagement",
    ]
    headers = {"Authorization": f"Bearer {app.state.tokens.issue(user, NOW)}"}
    worst = 0.0
    with TestClient(app) as client:
        t = time.perf_counter()
        first = client.get(paths[0], headers=headers)
        assert first.status_code == 200, (first.status_code, first.text[:300])
        print(
            f"first request (keeps the settled history for the process): {(time.perf_counter() - t) * 1000:.0f} ms"
        )
        # cpu: this process's own time (client, app and, for SQLite, the database), which the
        # other work on a shared machine does not inflate the way it does wall-clock time
        print(f"{'request':48s} {'median':>9s} {'p95':>9s} {'cpu':>9s}")
        for path in paths:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            times, cpu = [], []
            for _ in range(args.repeat):
                t, c = time.perf_counter(), time.process_time()
                client.get(path, headers=headers)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            worst = max(worst, p95(times))
            print(
                f"{path:48s} {statistics.median(times) * 1000:7.1f} ms {p95(times):7.1f} ms"
                f" {statistics.median(cpu) * 1000:7.1f} ms"
            )
    print(f"slowest p95: {worst:.1f} ms (target < 200 ms)")


if __name__ == "__main__":
    main()
