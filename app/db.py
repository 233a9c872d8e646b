"""Engine and sessions.

SQLite runs in WAL mode with a busy timeout, and every transaction takes the write
lock up front (BEGIN IMMEDIATE): concurrent webhooks then wait their turn instead of
failing with "database is locked" when a reader tries to upgrade to a writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class Limits:
    """How long one database step may take before it gives up.

    The phone line's engine gives up quickly (its answer is due within 3 s, and the
    apology is better than silence); the console, API, CLI and scheduler get more room.
    A PostgreSQL that hangs is cut off by connect_timeout and statement_timeout; a lock
    held elsewhere by lock_timeout; SQLite's writer lock by busy_timeout; an exhausted
    pool by pool_timeout.
    """

    connect_seconds: int
    statement_ms: int
    lock_ms: int
    busy_ms: int
    pool_seconds: float
    pool_size: int
    max_overflow: int


GENERAL = Limits(
    connect_seconds=5,
    statement_ms=30_000,
    lock_ms=5_000,
    busy_ms=5_000,
    pool_seconds=10,
    pool_size=5,
    max_overflow=10,
)
PHONE_LINE = Limits(
    connect_seconds=2,
    statement_ms=2_000,
    lock_ms=1_500,
    busy_ms=1_500,
    pool_seconds=1.5,
    pool_size=10,
    max_overflow=6,
)


def make_engine(url: str, limits: Limits = GENERAL, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": limits.busy_ms / 1000, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(limits.busy_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options = (
        f"-c statement_timeout={limits.statement_ms} -c lock_timeout={limits.lock_ms}"
        " -c idle_in_transaction_session_timeout=60000"
    )
    connect_args = {
        "connect_timeout": limits.connect_seconds,
        "options": options,
        # a peer that vanishes is noticed by the kernel, not after the default two hours
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
    }
    kwargs.setdefault("pool_size", limits.pool_size)
    kwargs.setdefault("max_overflow", limits.max_overflow)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_timeout=limits.pool_seconds,
        connect_args=connect_args,
        **kwargs,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back if it raises.

    Handlers and services never commit. The only exception is a write that must survive
    the error the handler then raises (a failed sign-in's audit row): commit it explicitly.
    """
    with request.app.state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


# scope="function": the commit happens before the response is sent, so a client that has
# its answer can rely on the change being stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
