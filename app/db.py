"""Engine and sessions.

SQLite runs in WAL mode with a busy timeout, and every transaction takes the write
lock up front (BEGIN IMMEDIATE): concurrent webhooks then wait their turn instead of
failing with "database is locked" when a reader tries to upgrade to a writer.

Inside one process, threads wait for that lock on a Python lock instead of in SQLite's
busy handler, which sleeps in steps of up to 100 ms and wakes no one when the lock is
released: with fifteen pooled connections the phone line's p99 was made of those sleeps.
The busy timeout still governs waits on other processes (the CLI, a backup).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
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
    # SQLite: checkpoint the WAL at commit once it is long. A connection whose commits must
    # never wait on the disk (the phone line's event loop) leaves that to a thread.
    autocheckpoint: bool = True


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


Synchronous = Literal["normal", "full"]


class WriterLock:
    """SQLite's writer lock as this process's threads take turns for it.

    Threads that wait are served first come, first served; a try without waiting (the
    event loop's, which must never block) succeeds only when nobody is waiting, so a
    busy event loop cannot starve the dialer's or the console's threads.
    """

    def __init__(self) -> None:
        self._turns = threading.Condition(threading.Lock())
        self._held = False
        self._waiting = 0

    def acquire(self, timeout: float) -> bool:
        with self._turns:
            if not self._held and self._waiting == 0:
                self._held = True
                return True
            if timeout <= 0:
                return False
            self._waiting += 1
            try:
                if self._turns.wait_for(lambda: not self._held, timeout):
                    self._held = True
                    return True
                return False
            finally:
                self._waiting -= 1

    def release(self) -> None:
        with self._turns:
            self._held = False
            self._turns.notify()


_writer_locks: dict[str, WriterLock] = {}
_writer_locks_made = threading.Lock()


def _writer_lock(url: str) -> WriterLock:
    """One lock per database file and process, shared by every engine on that file."""
    database = make_url(url).database or ""
    key = os.path.abspath(database) if database and not database.startswith((":", "file:")) else url
    with _writer_locks_made:
        return _writer_locks.setdefault(key, WriterLock())


class _WriterConnection(sqlite3.Connection):
    """A SQLite connection that gives the process's writer lock back when its transaction ends.

    It is released after COMMIT or ROLLBACK has finished, never before: a thread that gets
    the lock next sees everything committed.
    """

    held: WriterLock | None = None

    def _release(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


def configured_synchronous() -> Synchronous:
    """SQLITE_SYNCHRONOUS from the environment, for engines made outside the app (the CLI)."""
    return "full" if os.environ.get("SQLITE_SYNCHRONOUS", "").strip().lower() == "full" else "normal"


# The phone line's batches on PostgreSQL (app/deadline.py): one connection per batch
# thread, kept. A lock held elsewhere or a slow statement is not waited for long: the batch
# is given up and its webhooks run again alone on the phone line's threads (PHONE_LINE),
# where one waits, within its deadline, without holding up the others.
PHONE_LINE_BATCH = Limits(
    connect_seconds=2,
    statement_ms=500,
    lock_ms=100,
    busy_ms=0,
    pool_seconds=1.5,
    pool_size=4,
    max_overflow=2,
)


# The phone line's own connection on SQLite, used from the event loop: it never waits for
# the writer lock (the caller waits asynchronously and tries again) and never checkpoints.
PHONE_LINE_INLINE = Limits(
    connect_seconds=2,
    statement_ms=2_000,
    lock_ms=0,
    busy_ms=0,
    pool_seconds=1.5,
    pool_size=2,
    max_overflow=0,
    autocheckpoint=False,
)


def make_engine(
    url: str, limits: Limits = GENERAL, *, synchronous: Synchronous | None = None, **kwargs: Any
) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "timeout": limits.busy_ms / 1000,
                "check_same_thread": False,
                "factory": _WriterConnection,
            },
            **kwargs,
        )
        lock = _writer_lock(url)
        # NORMAL in WAL mode does not fsync at commit: a power cut may lose the last
        # transactions (never corrupt the file). FULL fsyncs the WAL at every commit.
        sync = (synchronous or configured_synchronous()).upper()

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(limits.busy_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={sync}")
            if not limits.autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            dbapi_conn = conn.connection.dbapi_connection
            if not lock.acquire(timeout=limits.busy_ms / 1000):
                raise OperationalError(
                    "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked (by this process)")
                )
            dbapi_conn.held = lock
            try:
                # on the driver itself: through the engine's execution this one statement
                # cost a lone webhook a tenth of the runner's time around its work
                dbapi_conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                dbapi_conn._release()
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            except BaseException:
                dbapi_conn._release()
                raise

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


def statement_connection(db: Session) -> Connection:
    """Where a statement run on the driver's cursor goes: the batch's connection in its
    open transaction when the session is bound to one (the phone line's batches,
    app/deadline.py), else the session's own. In a batch, the session's own transaction
    around a few statements cost more than they did; a step that fails after writing
    still ends the batch's transaction (app/twilio/webhooks.py)."""
    bind = db.get_bind()
    if isinstance(bind, Connection) and bind.in_transaction():
        return bind
    return db.connection()


_KEPT_CURSOR = "peerline_kept_cursor"


def driver_cursor(conn: Connection) -> tuple[Any, bool]:
    """The driver's cursor, for statements run on it directly (app/services/cursor.py,
    app/twilio/fast.py), and whether the caller is to close it. PostgreSQL's is kept with
    its connection and used again: psycopg reads every result whole, so a kept cursor
    holds nothing open on the server, and making one (its adapters) cost about a quarter
    of a prepared statement's time in this process. SQLite's is made for the caller, who
    closes it: it costs little, and a kept one would keep its last statement open. (A
    plain function: as a context manager it cost the phone line 4 % of its batch threads.)"""
    fairy = conn.connection
    if conn.dialect.name != "postgresql":
        return fairy.cursor(), True
    if _HELD in fairy.info:
        send_held(conn)
    raw = fairy.dbapi_connection
    # the pool's info lives as long as the driver's connection; the check covers a reconnect
    kept = fairy.info.get(_KEPT_CURSOR)
    if kept is None or kept[0] is not raw or kept[1].closed:
        kept = fairy.info[_KEPT_CURSOR] = (raw, raw.cursor())  # type: ignore[union-attr]
    return kept[1], False


# ---------------------------------------------------------------- writes held back
#
# In a PostgreSQL batch (app/deadline.py) a webhook may hold its write back
# (app/twilio/fast.py: a known caller's call row): the writes held are sent together, in
# one round trip, before the connection's next statement of any kind (through the engine
# or on the driver's cursor), or with the batch's COMMIT. Any statement therefore sees
# them, as if each had been sent in its turn; one that fails (a row there already) fails
# the batch at that point, as it would have then.

_HELD = "peerline_held"


def holds_writes(engine: Engine) -> None:
    """Lets this engine's connections hold writes back (the phone line's batches, and
    only them: every statement through the engine then first asks whether any are held)."""
    event.listen(engine, "before_cursor_execute", _send_held_first)


def hold(conn: Connection, sql: str, parameters: Any) -> None:
    """A write for later, in this connection's transaction (PostgreSQL only; on an
    engine that `holds_writes`)."""
    conn.info.setdefault(_HELD, []).append((sql, parameters))


def send_held(conn: Connection) -> None:
    """The writes held on this connection, sent now (nothing if none)."""
    held = conn.info.pop(_HELD, None)
    if held:
        _pipelined(conn, held)


def commit_held(conn: Connection) -> None:
    """COMMIT, the writes held going with it: one round trip. A held write that fails
    leaves the transaction failed, and the COMMIT behind it is never run.

    The COMMIT is sent as a statement among the writes: the driver's own commit() in a
    pipeline waits for its answer and the pipeline's end waits again, two round trips,
    and an error in the second would say a stored batch had failed. The engine's commit
    that follows finds the driver's transaction over and sends nothing."""
    held = conn.info.pop(_HELD, None)
    if held:
        _pipelined(conn, [*held, ("COMMIT", None)])
    conn.commit()


def drop_held(conn: Connection) -> None:
    """The writes held are forgotten: their transaction is over, or given up. (The
    connection's info outlives the transaction; they must never reach a later one.)"""
    conn.info.pop(_HELD, None)


def _pipelined(conn: Connection, held: list[tuple[str, Any]]) -> None:
    raw = conn.connection.dbapi_connection
    with as_engine_error(conn), raw.pipeline(), raw.cursor() as cursor:  # type: ignore[union-attr]
        for sql, parameters in held:
            cursor.execute(sql, parameters)


def _send_held_first(conn: Connection, *_: Any) -> None:
    if _HELD in conn.info:
        send_held(conn)


def engine_error(conn: Connection, exc: Exception, sql: str | None = None) -> StatementError:
    """A driver's error as the engine raises it (a lock timeout as sqlalchemy's
    OperationalError, a duplicate key as its IntegrityError), for statements sent on the
    driver's connection directly; never with their parameters, which a log line would
    then carry."""
    return DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error)


@contextlib.contextmanager
def as_engine_error(conn: Connection) -> Iterator[None]:
    """The driver's errors raised within, as the engine raises them (`engine_error`)."""
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as exc:
        raise engine_error(conn, exc) from exc


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
