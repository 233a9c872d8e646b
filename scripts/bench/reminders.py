# ruff: noqa: E501
"""Reminder sweep decision at scale: 50,000 pairs with 5,000,000 calls of history.

Measures the sweep's decision -- which pairs are due a reminder now -- against a naive
decision that finds each pair's last contact by scanning call history, at two history
sizes (1M and 5M calls), so growth with history shows. Also times the whole `schedule`
phase (decision plus reminder rows), rolled back.

    .venv/bin/python scripts/bench/reminders.py [--database-url URL] [--pairs 50000] [--calls 5000000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, or_, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.db import make_engine
from app.migrate import upgrade
from app.models import Call, Pair
from app.services import reminders
from app.services.policy import Policy
from app.settings import Settings

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
PERIOD = timedelta(days=7)
DUE_SHARE = 0.1  # one pair in ten has gone quiet


def ts(dt: datetime, sqlite: bool) -> object:
    return dt.replace(tzinfo=None).isoformat(sep=" ") if sqlite else dt


def build_people_and_pairs(engine: Engine, pairs: int) -> list[datetime | None]:
    sqlite = engine.dialect.name == "sqlite"
    rng = random.Random(1)
    started = NOW - timedelta(days=365)
    people = [
        (i, f"P{i}", b"x", f"{i:064x}", "America/New_York", "en", "active", ts(started, sqlite))
        for i in range(1, 2 * pairs + 1)
    ]
    last_contacts: list[datetime | None] = []
    pair_rows = []
    for p in range(1, pairs + 1):
        quiet = rng.random() < DUE_SHARE
        last = NOW - timedelta(days=rng.uniform(8, 60) if quiet else rng.uniform(0, 6.9))
        last_contacts.append(last)
        pair_rows.append(
            (p, 2 * p - 1, 2 * p, ts(started, sqlite), ts(last, sqlite), ts(last + PERIOD, sqlite), "")
        )
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        ph = "?" if sqlite else "%s"
        cur.executemany(
            "INSERT INTO participant (id, name, phone_ciphertext, phone_index, timezone, language, status, created_at)"
            f" VALUES ({', '.join([ph] * 8)})",
            people,
        )
        cur.executemany(
            "INSERT INTO pair (id, participant_a_id, participant_b_id, started_at, last_contact_at, next_reminder_at, notes)"
            f" VALUES ({', '.join([ph] * 7)})",
            pair_rows,
        )
        cur.execute("UPDATE participant SET active_pair_id = (id + 1) / 2")
    return last_contacts


def call_rows(
    start: int, count: int, pairs: int, last_contacts: list[datetime | None], sqlite: bool
) -> Iterator[tuple[object, ...]]:
    rng = random.Random(start)
    for n in range(start, start + count):
        if n < pairs:  # each pair's last contact first, so history and pair agree
            pair, at, contact = n + 1, last_contacts[n], True
            assert at is not None
        else:
            pair = rng.randrange(1, pairs + 1)
            last = last_contacts[pair - 1]
            assert last is not None
            at = last - timedelta(hours=rng.uniform(1, 8000))
            contact = rng.random() < 0.5
        yield (
            f"CA{n:032x}",
            "peer",
            pair,
            2 * pair - 1,
            2 * pair,
            ts(at, sqlite),
            ts(at, sqlite) if contact else None,
            300 if contact else 0,
            "contact" if contact else "no_answer",
            0,
        )


def load_calls(
    engine: Engine, start: int, count: int, pairs: int, last_contacts: list[datetime | None]
) -> None:
    sqlite = engine.dialect.name == "sqlite"
    columns = "twilio_call_sid, kind, pair_id, initiator_id, callee_id, started_at, accepted_at, duration_seconds, outcome, id_tries"
    rows = call_rows(start, count, pairs, last_contacts, sqlite)
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        if sqlite:
            batch: list[tuple[object, ...]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == 100_000:
                    cur.executemany(f"INSERT INTO call ({columns}) VALUES ({', '.join(['?'] * 10)})", batch)
                    batch.clear()
            if batch:
                cur.executemany(f"INSERT INTO call ({columns}) VALUES ({', '.join(['?'] * 10)})", batch)
        else:
            with cur.copy(f"COPY call ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def sweep_decision(db: Session) -> int:
    """What the sweep reads: pairs whose next quiet period has begun, from an index."""
    due = db.scalars(
        select(Pair.id).where(
            Pair.ended_at.is_(None), or_(Pair.next_reminder_at <= NOW, Pair.next_reminder_at.is_(None))
        )
    ).all()
    return len(due)


def naive_decision(db: Session) -> int:
    """The naive way: each pair's last contact from call history, then compare."""
    last = dict(
        db.execute(
            select(Call.pair_id, func.max(Call.accepted_at))
            .where(Call.outcome == "contact")
            .group_by(Call.pair_id)
        ).all()
    )
    pairs = db.execute(select(Pair.id, Pair.started_at).where(Pair.ended_at.is_(None))).all()
    return sum(1 for pid, started in pairs if (last.get(pid) or started) + PERIOD <= NOW)


def whole_schedule(db: Session) -> int:
    created, _ = reminders.schedule(db, NOW, Policy())
    db.rollback()
    return created


def timed(engine: Engine, fn: Callable[[Session], int], repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        with Session(engine) as db:
            t0 = time.perf_counter()
            result = fn(db)
            times.append(time.perf_counter() - t0)
            db.rollback()
    return statistics.median(times), result


def measure(engine: Engine, label: str) -> None:
    sweep_t, due = timed(engine, sweep_decision, 7)
    naive_t, naive_due = timed(engine, naive_decision, 3)
    sched_t, created = timed(engine, whole_schedule, 3)
    assert due == naive_due, (due, naive_due)
    print(
        f"{label:>10} calls | due pairs {due:6d} | sweep decision {sweep_t * 1000:8.1f} ms | "
        f"naive {naive_t * 1000:9.1f} ms | naive/sweep {naive_t / sweep_t:7.1f}x | "
        f"whole schedule phase {sched_t * 1000:8.1f} ms ({created} reminders)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=5_000_000)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='peerline-bench-')}/reminders.db"
    url = Settings(database_url=url).database_url
    upgrade(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    last_contacts = build_people_and_pairs(engine, args.pairs)
    first = args.calls // 5
    load_calls(engine, 0, first, args.pairs, last_contacts)
    print(f"database {engine.dialect.name}, {args.pairs} pairs; built in {time.perf_counter() - t0:.0f} s")
    measure(engine, f"{first:,}")
    load_calls(engine, first, args.calls - first, args.pairs, last_contacts)
    measure(engine, f"{args.calls:,}")
    engine.dispose()


if __name__ == "__main__":
    main()
