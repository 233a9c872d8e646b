# ruff: noqa: E501
"""Bulk-made programme data for the benchmarks: pairs, participants and call history.

Rows go in through the driver's own bulk paths (executemany on SQLite, COPY on
PostgreSQL): the ORM would take hours for millions of calls.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import Engine, text

from app.models import StaffUser

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
PERIOD = timedelta(days=7)
DUE_SHARE = 0.1  # one pair in ten has gone quiet


def fresh_database(url: str | None, name: str) -> tuple[str, Engine]:
    """The given database (or a new SQLite file), migrated to head, and an engine on it."""
    import tempfile

    from app.db import make_engine
    from app.migrate import upgrade
    from app.settings import Settings

    url = Settings(
        database_url=url or f"sqlite:///{tempfile.mkdtemp(prefix='peerline-bench-')}/{name}.db"
    ).database_url
    upgrade(url)
    return url, make_engine(url)


def bench_app(url: str, role: str) -> tuple[FastAPI, StaffUser]:
    """The real app on that database, its clock at NOW, and a signed-up account of that role."""
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
    with app.state.sessionmaker() as db:
        user = staff.create_user(
            db, email=f"{role}@clinic.example.org", password="bench-password-long", role=role, now=NOW
        )
        db.commit()
    return app, user


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
    start: int,
    count: int,
    pairs: int,
    last_contacts: list[datetime | None],
    sqlite: bool,
    only_pair: int | None = None,
) -> Iterator[tuple[object, ...]]:
    rng = random.Random(start)
    for n in range(start, start + count):
        if n < pairs:  # each pair's last contact first, so history and pair agree
            pair, at, contact = n + 1, last_contacts[n], True
            assert at is not None
        else:
            pair = only_pair or rng.randrange(1, pairs + 1)
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
    engine: Engine,
    start: int,
    count: int,
    pairs: int,
    last_contacts: list[datetime | None],
    only_pair: int | None = None,
) -> None:
    sqlite = engine.dialect.name == "sqlite"
    columns = "twilio_call_sid, kind, pair_id, initiator_id, callee_id, started_at, accepted_at, duration_seconds, outcome, id_tries"
    rows = call_rows(start, count, pairs, last_contacts, sqlite, only_pair)
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
