# ruff: noqa: E501
"""Call log at scale: 10,000,000 calls, first and 1,000th page, keyset against OFFSET.

Pages of `GET /api/v1/calls` (all calls, and one pair's calls) are requested through
the real app in-process, signed in as a nurse; the same pages are also fetched with
OFFSET paging directly, side by side. Per-pair stats are timed too.

    .venv/bin/python scripts/bench/calls_api.py --database-url postgresql://... [--calls 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastapi.testclient import TestClient

from app.api.pagination import encode_cursor
from app.models import Call
from scripts.bench.data import NOW, bench_app, build_people_and_pairs, fresh_database, load_calls

PAGE = 50


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000 if len(values) > 2 else max(values) * 1000


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--hot-pair-calls", type=int, default=60_000)
    args = parser.parse_args()
    url, engine = fresh_database(args.database_url, "calls")
    t0 = time.perf_counter()
    last_contacts = build_people_and_pairs(engine, args.pairs)
    load_calls(engine, 0, args.calls, args.pairs, last_contacts)
    # one very talkative pair, so that it has a 1,000th page of its own
    load_calls(engine, args.calls, args.hot_pair_calls, args.pairs, last_contacts, only_pair=1)
    print(
        f"database {engine.dialect.name}: {args.pairs:,} pairs, {args.calls:,} calls; built in {time.perf_counter() - t0:.0f} s"
    )

    app, nurse = bench_app(url, "nurse")
    token = app.state.tokens.issue(nurse, NOW)
    headers = {"Authorization": f"Bearer {token}"}
    busiest_pair = 1

    def key_at(db: Session, offset: int, pair: int | None) -> str:
        stmt = (
            select(Call.started_at, Call.id)
            .order_by(Call.started_at.desc(), Call.id.desc())
            .offset(offset - 1)
            .limit(1)
        )
        if pair is not None:
            stmt = stmt.where(Call.pair_id == pair)
        started, id_ = db.execute(stmt).one()
        return encode_cursor(started, id_)

    def offset_page(db: Session, offset: int, pair: int | None) -> None:
        stmt = select(Call).order_by(Call.started_at.desc(), Call.id.desc()).offset(offset).limit(PAGE)
        if pair is not None:
            stmt = stmt.where(Call.pair_id == pair)
        db.scalars(stmt).all()

    pair_calls = 0
    with Session(engine) as db:
        from sqlalchemy import func

        pair_calls = db.scalar(select(func.count(Call.id)).where(Call.pair_id == busiest_pair)) or 0
        pair_last_page = min(1000, max(1, pair_calls // PAGE))
        total = db.scalar(select(func.count(Call.id))) or 0
        far = min(1000, max(2, total // PAGE))  # the 1,000th page, or the last one on small data
        cases = [
            ("all calls, page 1", None, None, 0),
            (f"all calls, page {far:,}", None, key_at(db, (far - 1) * PAGE, None), (far - 1) * PAGE),
            ("one pair, page 1", busiest_pair, None, 0),
            (
                f"one pair, last page ({pair_last_page})",
                busiest_pair,
                key_at(db, (pair_last_page - 1) * PAGE, busiest_pair) if pair_last_page > 1 else None,
                (pair_last_page - 1) * PAGE,
            ),
        ]
    print(f"pair {busiest_pair} has {pair_calls} calls")
    print(f"{'page':32s} {'API keyset p99':>15s} {'API median':>11s} {'SQL OFFSET p99':>15s}")
    with TestClient(app) as client:
        for label, pair, cursor, offset in cases:
            params = {"limit": str(PAGE)}
            if pair is not None:
                params["pair_id"] = str(pair)
            if cursor:
                params["cursor"] = cursor

            def api(params: dict[str, str] = params) -> None:
                response = client.get("/api/v1/calls", params=params, headers=headers)
                assert response.status_code == 200 and len(response.json()["items"]) > 0, response.text[:200]

            def sql_offset(offset: int = offset, pair: int | None = pair) -> None:
                with Session(engine) as db:
                    offset_page(db, offset, pair)

            api()
            api_times = timed(api, args.repeat)
            off_times = timed(sql_offset, max(5, args.repeat // 5))
            print(
                f"{label:32s} {p99(api_times):12.1f} ms {statistics.median(api_times) * 1000:8.1f} ms {p99(off_times):12.1f} ms"
            )

        def typical_stats() -> None:
            assert client.get("/api/v1/pairs/2/stats", headers=headers).status_code == 200

        typical = timed(typical_stats, args.repeat)
        print(
            f"{'per-pair stats, typical pair':32s} {p99(typical):12.1f} ms {statistics.median(typical) * 1000:8.1f} ms"
        )

        def stats() -> None:
            assert client.get(f"/api/v1/pairs/{busiest_pair}/stats", headers=headers).status_code == 200

        stat_times = timed(stats, args.repeat)
        print(
            f"{'per-pair stats, busiest pair':32s} {p99(stat_times):12.1f} ms {statistics.median(stat_times) * 1000:8.1f} ms"
        )
    engine.dispose()


if __name__ == "__main__":
    main()
