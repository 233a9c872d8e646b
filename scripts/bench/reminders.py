"""Reminder sweep decision at scale: 50,000 pairs with 5,000,000 calls of history.

Measures the sweep's decision -- which pairs are due a reminder now -- against a naive
decision that finds each pair's last contact by scanning call history, at two history
sizes (1M and 5M calls), so growth with history shows. Also times the whole `schedule`
phase (decision plus reminder rows), rolled back.

    .venv/bin/python scripts/bench/reminders.py [--database-url URL] [--pairs 50000] [--calls 5000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.models import Call, Pair
from app.services import reminders
from app.services.policy import Policy
from scripts.bench.data import NOW, PERIOD, build_people_and_pairs, fresh_database, load_calls


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
    _, engine = fresh_database(args.database_url, "reminders")
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
