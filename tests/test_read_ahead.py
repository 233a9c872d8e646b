"""On PostgreSQL a batch's known callers are read in one round trip before the batch runs
(app/twilio/fast.py, "a batch's callers, read at once"), and a row read ahead is never
used once the batch has written something it counts. Their call rows are written
together, with the batch's next statement or its COMMIT (app/db.py, "writes held back"),
and a row made elsewhere meanwhile sends the batch to run again, alone."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, func, select, text
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.db import PHONE_LINE, PHONE_LINE_BATCH, holds_writes, make_engine, make_sessionmaker
from app.deadline import DeadlineRunner, Guard
from app.migrate import upgrade
from app.models import Call
from app.services import participants
from app.twilio import fast
from tests.conftest import ANA, BEA, CAL, DEE, PG_URL, STRANGER, new_pg_database

pytestmark = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VAULT = PhoneVault.from_secret("read-ahead-secret-key-read-ahead-secret")


class Reads:
    """The caller reads each webhook makes for itself (not those made ahead)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.made: list[str] = []

    def compiled(self, dialect: Any) -> Any:
        return self.inner.compiled(dialect)

    def first_as_stored(self, db: Session, given: dict[str, Any]) -> Sequence[Any] | None:
        self.made.append(given["sid"])
        return self.inner.first_as_stored(db, given)  # type: ignore[no-any-return]


@pytest.fixture
def url() -> str:
    """Ana and Bea paired, Cal and Dee paired."""
    url = new_pg_database("read_ahead")
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        people = {
            phone: participants.enrol(
                db, VAULT, name=name, phone=phone, timezone="UTC", quiet_hours=None, now=NOW
            )
            for name, phone in (("Ana", ANA), ("Bea", BEA), ("Cal", CAL), ("Dee", DEE))
        }
        db.flush()
        participants.make_pair(db, people[ANA].id, people[BEA].id, now=NOW)
        participants.make_pair(db, people[CAL].id, people[DEE].id, now=NOW)
        db.commit()
    engine.dispose()
    return url


@pytest.fixture
def batch(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Connection, Reads]]:
    """The batch thread's connection in its transaction, as app/deadline.py runs a batch."""
    reads = Reads(fast._READ_CALLER)
    monkeypatch.setattr(fast, "_READ_CALLER", reads)
    batch_engine = make_engine(url, PHONE_LINE_BATCH)
    holds_writes(batch_engine)  # as the phone line's runner makes it
    with batch_engine.connect() as conn, conn.begin():
        yield conn, reads
    batch_engine.dispose()


def _waiting(*calls: tuple[str, str]) -> list[contextvars.Context]:
    """The contexts of inbound calls' webhooks put in line, as the voice route leaves them."""
    contexts = []
    for sid, phone in calls:
        context = contextvars.copy_context()
        context.run(fast.ask_ahead, VAULT, sid=sid, from_=phone, region="US", now=NOW)
        contexts.append(context)
    return contexts


def _inbound(conn: Connection, sid: str, phone: str) -> fast.Known | None:
    """One webhook of the batch on the fast path: the caller read, the call written."""
    db = Session(bind=conn, join_transaction_mode="rollback_only")
    known = fast.known_caller(db, VAULT, sid=sid, from_=phone, region="US", lang=None, now=NOW)
    if known is not None:
        # as the flow records it: the caller's call, in their pair
        known.call.initiator_id, known.call.pair_id = known.caller.person.id, known.caller.pair_id
        assert fast.write_call(db, known.call, []) is not None
    fast.READ_AHEAD.after_each(conn)
    return known


def test_callers_waiting_in_one_batch_are_read_together(batch: tuple[Connection, Reads]) -> None:
    conn, reads = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA2", CAL), ("CA3", STRANGER)))

    ana = _inbound(conn, "CA1", ANA)
    cal = _inbound(conn, "CA2", CAL)
    stranger = _inbound(conn, "CA3", STRANGER)

    assert reads.made == []  # none read for itself
    assert ana is not None and ana.caller.partner is not None and ana.caller.partner.name == "Bea"
    assert cal is not None and cal.caller.partner is not None and cal.caller.partner.name == "Dee"
    assert stranger is None  # unknown: the general path
    fast.READ_AHEAD.after(conn)


def test_a_caller_whose_partner_called_earlier_in_the_batch_is_read_again(
    batch: tuple[Connection, Reads],
) -> None:
    conn, reads = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA2", BEA)))

    _inbound(conn, "CA1", ANA)
    bea = _inbound(conn, "CA2", BEA)

    # read ahead, Ana was on no call; she is now, and Bea hears so
    assert reads.made == ["CA2"]
    assert bea is not None and bea.caller.partner is not None and bea.caller.partner.on_call


def test_a_repeated_webhook_in_the_same_batch_is_read_again_and_left_to_the_general_path(
    batch: tuple[Connection, Reads],
) -> None:
    conn, reads = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA1", ANA), ("CA2", CAL)))

    assert _inbound(conn, "CA1", ANA) is not None
    assert _inbound(conn, "CA1", ANA) is None  # its row is there: the general path
    # the general path may have written anything: the rest of the batch reads again
    assert _inbound(conn, "CA2", CAL) is not None
    assert reads.made == ["CA1", "CA2"]


def test_after_a_webhook_that_took_the_general_path_the_rest_read_again(
    batch: tuple[Connection, Reads],
) -> None:
    conn, reads = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA2", CAL)))

    fast.READ_AHEAD.after_each(conn)  # a status callback, say: no call written by the fast path
    _inbound(conn, "CA1", ANA)
    _inbound(conn, "CA2", CAL)

    assert reads.made == ["CA1", "CA2"]


def test_a_lone_webhook_and_a_batch_that_is_over_read_for_themselves(
    batch: tuple[Connection, Reads],
) -> None:
    conn, reads = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA)))  # one alone: nothing read ahead
    _inbound(conn, "CA1", ANA)
    fast.READ_AHEAD.before(conn, _waiting(("CA2", CAL), ("CA3", DEE)))
    fast.READ_AHEAD.after(conn)  # given up, say: its rows are gone with it
    _inbound(conn, "CA2", CAL)

    assert reads.made == ["CA1", "CA2"]


def _stored(url: str) -> dict[str, int]:
    """The call rows committed: each call's id by its SID."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {sid: id_ for id_, sid in conn.execute(text("SELECT id, twilio_call_sid FROM call"))}
    finally:
        engine.dispose()


@contextlib.contextmanager
def _traced(raw: Any) -> Iterator[Callable[[], list[str]]]:
    """The protocol messages the driver sends meanwhile (libpq's trace), by name."""
    with tempfile.TemporaryFile() as file:
        raw.pgconn.trace(file.fileno())
        try:
            lines: list[str] = []
            yield lambda: lines
        finally:
            raw.pgconn.untrace()
            file.seek(0)
            for line in file.read().decode().splitlines():
                fields = line.split("\t")
                if len(fields) > 3 and fields[1] == "F":
                    lines.append(fields[3].split(" ")[0])


def test_the_call_rows_of_a_batch_go_with_its_commit_with_the_ids_read_ahead(
    batch: tuple[Connection, Reads], url: str
) -> None:
    conn, _ = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA2", CAL)))
    ana = _inbound(conn, "CA1", ANA)
    cal = _inbound(conn, "CA2", CAL)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    assert raw.execute("SELECT count(*) FROM call").fetchone() == (0,)  # held back, not sent

    with _traced(raw) as sent:
        fast.READ_AHEAD.commit(conn)
    fast.READ_AHEAD.after(conn)

    assert sent().count("Sync") == 1  # the rows and the COMMIT: one round trip
    assert not conn.in_transaction()
    # the ids the REST requests carry (the partner's leg) are the rows' own
    assert ana is not None and cal is not None
    assert _stored(url) == {"CA1": ana.call.id, "CA2": cal.call.id}


def test_a_later_statement_of_the_batch_sees_the_rows_held_back(batch: tuple[Connection, Reads]) -> None:
    conn, _ = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA2", CAL)))
    _inbound(conn, "CA1", ANA)

    # a status callback, say, through the engine: the rows held are sent before it
    later = Session(bind=conn, join_transaction_mode="rollback_only")
    assert later.scalar(select(func.count()).select_from(Call).where(Call.twilio_call_sid == "CA1")) == 1
    fast.READ_AHEAD.after(conn)


def test_a_batch_given_up_forgets_the_rows_it_held_back(batch: tuple[Connection, Reads]) -> None:
    conn, _ = batch
    fast.READ_AHEAD.before(conn, _waiting(("CA1", ANA), ("CA2", CAL)))
    _inbound(conn, "CA1", ANA)
    fast.READ_AHEAD.after(conn)  # given up before its COMMIT

    # the connection's next statement (the pool's info outlives the transaction)
    conn.execute(text("SELECT 1"))
    raw = conn.connection.dbapi_connection
    assert raw is not None
    assert raw.execute("SELECT count(*) FROM call").fetchone() == (0,)


def _answers(sid: str, phone: str, before: Callable[[], object] = lambda: None) -> Any:
    """An inbound call's webhook as the voice route runs it: the fast path, or the general."""

    def work(db: Session, guard: Guard) -> tuple[str, None]:
        before()
        known = fast.known_caller(db, VAULT, sid=sid, from_=phone, region="US", lang=None, now=NOW)
        if known is None:
            return "general path", None
        known.call.initiator_id, known.call.pair_id = known.caller.person.id, known.caller.pair_id
        if fast.write_call(db, known.call, []) is None:
            return "general path", None
        guard.begin_commit()
        db.commit()
        return "fast path", None

    return work


@pytest.fixture
def runner(url: str) -> Iterator[DeadlineRunner]:
    """The phone line's runner as the app makes it on PostgreSQL, with one batch thread."""
    runner = DeadlineRunner(
        make_engine(url, PHONE_LINE),
        mode="batch",
        batch_engine=make_engine(url, PHONE_LINE_BATCH),
        batch_threads=1,
    )
    runner.read_ahead = fast.READ_AHEAD
    yield runner
    runner.shutdown()
    runner.engine.dispose()


Webhook = tuple[tuple[str, str] | None, Any]  # an inbound call's (SID, caller ID), and its work


def _one_batch(runner: DeadlineRunner, webhooks: list[Webhook]) -> list[Any]:
    """The webhooks' answers, all put in line together behind one that holds the batch
    thread: they then go as one batch, in this order."""
    gate = threading.Event()

    async def arrives(call: tuple[str, str] | None, work: Any) -> Any:
        if call is not None:  # as the voice route does
            fast.ask_ahead(VAULT, sid=call[0], from_=call[1], region="US", now=NOW)
        return await runner.run(work, lambda: "apology")

    async def together() -> list[Any]:
        held = asyncio.ensure_future(
            runner.run(lambda db, g: (gate.wait(5) and "held", None), lambda: "late")
        )
        await asyncio.sleep(0.1)
        rest = [asyncio.ensure_future(arrives(call, work)) for call, work in webhooks]
        await asyncio.sleep(0.05)
        gate.set()
        assert await held == "held"
        return [await each for each in rest]

    return asyncio.run(together())


def _counts_calls(db: Session, guard: Guard) -> tuple[int, None]:
    """A callback, say: it reads the calls stored, and commits."""
    found = db.scalar(select(func.count()).select_from(Call))
    guard.begin_commit()
    db.commit()
    return int(found or 0), None


def test_in_a_mixed_batch_the_calls_read_ahead_run_before_the_others(
    runner: DeadlineRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(fast._READ_CALLER)
    monkeypatch.setattr(fast, "_READ_CALLER", reads)

    answers = _one_batch(
        runner,
        [
            (None, _counts_calls),
            (("CA1", ANA), _answers("CA1", ANA)),
            (("CA2", CAL), _answers("CA2", CAL)),
        ],
    )

    # run first, the calls used their rows read ahead (a callback before them would have
    # made those stale); the callback, after them, found both calls
    assert answers == [2, "fast path", "fast path"]
    assert reads.made == []


def test_a_call_row_made_elsewhere_while_its_batch_ran_sends_the_batch_to_run_alone(
    runner: DeadlineRunner, url: str
) -> None:
    repeated = threading.Event()

    def repeat_answered_elsewhere() -> None:
        """Ana's webhook, repeated, answered by another process while the batch runs."""
        if repeated.is_set():
            return
        repeated.set()
        engine = make_engine(url)
        with make_sessionmaker(engine)() as db:
            known = fast.known_caller(db, VAULT, sid="CA1", from_=ANA, region="US", lang=None, now=NOW)
            assert known is not None
            assert fast.write_call(db, known.call, []) is not None
            db.commit()
        engine.dispose()

    answers = _one_batch(
        runner,
        [
            (("CA1", ANA), _answers("CA1", ANA)),
            (("CA2", CAL), _answers("CA2", CAL, repeat_answered_elsewhere)),
        ],
    )

    # Ana's row, held back, met the one made elsewhere at the COMMIT: nothing of the batch
    # was stored, and each webhook ran again alone; Ana's found her call's row
    assert answers == ["general path", "fast path"]
    assert sorted(_stored(url)) == ["CA1", "CA2"]


def test_a_caller_whose_row_is_locked_elsewhere_waits_alone_and_the_batch_goes_on(
    runner: DeadlineRunner, url: str
) -> None:
    # Ana's participant row is locked (a console edit, say) for 0.8 s: her call's row,
    # held back, meets the lock only at the batch's COMMIT (its foreign key's check)
    other = create_engine(url)
    holder = other.connect()
    holder.begin()
    holder.execute(text("SELECT id FROM participant WHERE name = 'Ana' FOR UPDATE"))
    releases = threading.Timer(0.8, holder.rollback)
    answered: dict[str, float] = {}
    started = time.monotonic()
    commits: list[str] = []
    assert runner.batch_engine is not None
    event.listen(runner.batch_engine, "commit", lambda conn: commits.append("commit"))

    def timed(sid: str, phone: str) -> Any:
        work = _answers(sid, phone)

        def run(db: Session, guard: Guard) -> tuple[str, None]:
            answer = work(db, guard)
            answered[sid] = time.monotonic() - started
            return answer  # type: ignore[no-any-return]

        return run

    releases.start()
    answers = _one_batch(runner, [(("CA1", ANA), timed("CA1", ANA)), (("CA2", CAL), timed("CA2", CAL))])
    releases.join()
    holder.close()
    other.dispose()

    assert answers == ["fast path", "fast path"]
    assert sorted(_stored(url)) == ["CA1", "CA2"]
    # the batch ran again, each writing its own row: Ana's waited alone, Cal's went on,
    # in a batch (the batches' COMMITs: the one that held the line, then Cal's)
    assert answered["CA2"] < 0.6 <= 0.8 <= answered["CA1"]
    assert len(commits) == 2
