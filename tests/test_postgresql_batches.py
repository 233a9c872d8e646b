"""On PostgreSQL the phone line runs webhooks in batches, one COMMIT each, and any trouble
sends a batch's webhooks back to run alone (app/deadline.py, mode `batch`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.db import PHONE_LINE, PHONE_LINE_BATCH, driver_cursor, make_engine
from app.deadline import COMMIT_GRACE_SECONDS, DeadlineRunner, Guard
from app.services.outbound import Outbound
from app.twilio import webhooks
from tests.conftest import PG_URL, new_pg_database
from tests.line_work import Work
from tests.line_work import stored_names as _names
from tests.line_work import writes as _writes

pytestmark = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")


@pytest.fixture
def url() -> str:
    url = new_pg_database("batches")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE note (name VARCHAR(20) PRIMARY KEY)"))
    engine.dispose()
    return url


@pytest.fixture
def runner(url: str) -> Iterator[DeadlineRunner]:
    """The phone line's runner as the app makes it, with one batch thread: which webhooks
    share a batch is then up to the test."""
    runner = DeadlineRunner(
        make_engine(url, PHONE_LINE),
        mode="batch",
        batch_engine=make_engine(url, PHONE_LINE_BATCH),
        batch_threads=1,
    )
    yield runner
    runner.shutdown()
    runner.engine.dispose()


@contextlib.contextmanager
def _held_elsewhere(url: str, name: str, *, seconds: float) -> Iterator[None]:
    """Another session inserts the note and holds its key, uncommitted, for `seconds`."""
    other: Engine = create_engine(url)
    holder = other.connect()
    holder.begin()
    holder.execute(text("INSERT INTO note (name) VALUES (:n)"), {"n": name})
    releases = threading.Timer(seconds, holder.rollback)
    releases.start()
    try:
        yield
    finally:
        releases.join()
        holder.close()
        other.dispose()


def _commits(runner: DeadlineRunner) -> list[str]:
    commits: list[str] = []
    assert runner.batch_engine is not None
    event.listen(runner.batch_engine, "commit", lambda conn: commits.append("commit"))
    return commits


async def _behind(gate: threading.Event, runner: DeadlineRunner, works: list[Work]) -> list[str]:
    """The first webhook holds the batch thread until the others are all in line: they
    then go as one batch."""
    first = asyncio.ensure_future(runner.run(_writes("first", before=lambda: gate.wait(5)), lambda: "late"))
    await asyncio.sleep(0.1)
    rest = [asyncio.ensure_future(runner.run(work, lambda: "late")) for work in works]
    await asyncio.sleep(0.05)
    gate.set()
    return [await first, *[await each for each in rest]]


def test_the_phone_line_on_postgresql_runs_webhooks_in_batches(url: str) -> None:
    runner = DeadlineRunner.for_engine(make_engine(url, PHONE_LINE), url)
    assert runner.mode == "batch"
    assert runner.batch_engine is not None
    runner.shutdown()
    runner.engine.dispose()


def test_webhooks_waiting_together_share_one_commit(runner: DeadlineRunner, url: str) -> None:
    commits = _commits(runner)
    names = ["a", "b", "c", "d", "e"]

    answers = asyncio.run(_behind(threading.Event(), runner, [_writes(n) for n in names]))

    assert answers == ["first", *names]
    assert _names(url) == {"first", *names}
    assert len(commits) == 2  # the first alone, then the five together


def test_a_webhook_that_fails_in_a_batch_hears_the_apology_and_the_others_are_stored(
    runner: DeadlineRunner, url: str
) -> None:
    works = [_writes(n, fails=n == "bad") for n in ("a", "bad", "b", "c")]

    answers = asyncio.run(_behind(threading.Event(), runner, works))

    assert answers == ["first", "a", "apology", "b", "c"]
    assert _names(url) == {"first", "a", "b", "c"}


def test_a_callback_that_fails_in_a_batch_is_recorded_alone_without_an_error_of_its_own(
    runner: DeadlineRunner, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tries: list[int] = []

    def records(db: Session) -> list[Outbound]:
        """Its first try meets a fault of the batch's (another webhook's row held back
        failing, a connection cut); alone, it is recorded."""
        tries.append(1)
        if len(tries) == 1:
            raise OperationalError("INSERT", None, Exception("the batch's connection was cut"))
        db.execute(text("INSERT INTO note (name) VALUES ('callback')"))
        return []

    def callback(db: Session, guard: Guard) -> tuple[str, None]:
        answer = webhooks._quietly(db, lambda: records(db), guard, webhooks.AfterCommit(cast(Any, None)))
        return answer.body.decode(), None

    answers = asyncio.run(_behind(threading.Event(), runner, [_writes("a"), callback, _writes("b")]))

    assert answers[1] == "a" and "<Response" in answers[2] and answers[3] == "b"
    assert _names(url) == {"first", "a", "callback", "b"} and len(tries) == 2
    # the batch's failure is logged as the batch's; the callback logs no error of its own
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("a batch was given up" in r.getMessage() for r in caplog.records)


def test_a_row_locked_elsewhere_holds_up_only_its_own_webhook(runner: DeadlineRunner, url: str) -> None:
    # another session is inserting "held" and has not committed: the phone line's insert of
    # the same key must wait for it
    other: Engine = create_engine(url)
    holder = other.connect()
    holder.begin()
    holder.execute(text("INSERT INTO note (name) VALUES ('held')"))
    answered: dict[str, float] = {}

    async def main() -> list[str]:
        started = time.monotonic()

        async def timed(work: Work, name: str) -> str:
            answer = await runner.run(work, lambda: "late")
            answered[name] = time.monotonic() - started
            return answer

        asyncio.get_running_loop().call_later(0.8, holder.rollback)
        return await asyncio.gather(*(timed(_writes(n), n) for n in ("held", "a", "b")))

    answers = asyncio.run(main())
    holder.close()
    other.dispose()

    assert answers == ["held", "a", "b"]
    assert _names(url) == {"held", "a", "b"}
    assert answered["a"] < 0.6 and answered["b"] < 0.6  # the batch gave up within 0.1 s
    assert answered["held"] >= 0.8  # it waited, alone, for the other session


def test_a_row_locked_elsewhere_sends_only_its_webhook_to_wait_alone_the_others_go_on_in_a_batch(
    runner: DeadlineRunner, url: str
) -> None:
    commits = _commits(runner)

    def writes(name: str) -> Work:
        """As the webhooks do in a batch: a refusal is not theirs to answer (it raises)."""

        def work(db: Session, guard: Guard) -> tuple[str, None]:
            db.execute(text("INSERT INTO note (name) VALUES (:n)"), {"n": name})
            guard.begin_commit()
            db.commit()
            return name, None

        return work

    works = [writes(n) for n in ("held", "a", "b", "c")]
    with _held_elsewhere(url, "held", seconds=0.8):
        answers = asyncio.run(_behind(threading.Event(), runner, works))

    assert answers == ["first", "held", "a", "b", "c"]
    assert _names(url) == {"first", "held", "a", "b", "c"}
    # the first alone, then a, b and c together again (held waited alone, on its own engine)
    assert len(commits) == 2


def test_a_refused_commit_sends_the_batch_to_run_alone_and_nothing_is_lost(
    runner: DeadlineRunner, url: str
) -> None:
    commits: list[str] = []

    def refuse_the_second(conn: object) -> None:
        # the first COMMIT is the batch of "first" alone; the second is "a" and "b" together
        commits.append("commit")
        if len(commits) == 2:
            raise RuntimeError("the server refused the COMMIT")

    assert runner.batch_engine is not None
    event.listen(runner.batch_engine, "commit", refuse_the_second)

    answers = asyncio.run(_behind(threading.Event(), runner, [_writes(n) for n in ("a", "b")]))

    assert len(commits) == 2  # a and b were not tried in a batch again: they ran alone
    assert answers == ["first", "a", "b"]
    assert _names(url) == {"first", "a", "b"}


def test_a_batch_whose_connection_was_cut_runs_its_webhooks_again_alone(
    runner: DeadlineRunner, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert asyncio.run(runner.run(_writes("before"), lambda: "late")) == "before"
    # the server ends every other session on this database: the batch thread's kept
    # connection is now dead, though nothing has told it so
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()

    async def main() -> list[str]:
        return await asyncio.gather(*(runner.run(_writes(n), lambda: "late") for n in ("a", "b")))

    assert asyncio.run(main()) == ["a", "b"]
    assert _names(url) == {"before", "a", "b"}
    assert "a batch was given up" in caplog.text


def test_a_webhook_whose_deadline_passes_in_a_batch_is_never_stored(runner: DeadlineRunner, url: str) -> None:
    runner.deadline_seconds = 0.3
    # its answer goes back before it writes; "a", done before it in the same batch, is
    # being committed by then: its grace covers its run again, alone
    slow = _writes("slow", before=lambda: time.sleep(0.4))

    async def main() -> list[str]:
        return await asyncio.gather(
            runner.run(_writes("a"), lambda: "late"), runner.run(slow, lambda: "late")
        )

    answers = asyncio.run(main())
    time.sleep(0.3)  # whatever still runs has ended

    assert answers == ["a", "late"]
    assert _names(url) == {"a"}


def test_several_batch_threads_store_every_webhook_once(url: str) -> None:
    runner = DeadlineRunner.for_engine(make_engine(url, PHONE_LINE), url)
    commits = _commits(runner)
    names = [f"n{i}" for i in range(200)]

    async def main() -> list[str]:
        return await asyncio.gather(*(runner.run(_writes(n), lambda: "late") for n in names))

    try:
        answers = asyncio.run(main())
    finally:
        runner.shutdown()
        runner.engine.dispose()

    assert answers == names
    assert _names(url) == set(names)
    assert len(commits) < 100  # in batches: one COMMIT per webhook would be 200


def test_a_kept_callback_in_a_batch_answers_at_its_deadline_and_is_still_stored(
    runner: DeadlineRunner, url: str
) -> None:
    runner.deadline_seconds = 0.2
    gate = threading.Event()

    def slow(db: Session, guard: Guard) -> tuple[str, None]:
        db.execute(text("INSERT INTO note (name) VALUES ('callback')"))
        gate.wait(5)
        guard.begin_commit()  # a kept callback is never abandoned
        db.commit()
        return "recorded", None

    async def main() -> tuple[str, float]:
        started = time.monotonic()
        answer = await runner.run(slow, lambda: "empty response", keep=True)
        seconds = time.monotonic() - started
        gate.set()
        return answer, seconds

    answer, seconds = asyncio.run(main())
    deadline = time.monotonic() + 5
    while _names(url) != {"callback"} and time.monotonic() < deadline:
        time.sleep(0.05)

    assert answer == "empty response"
    assert seconds < 0.4
    assert _names(url) == {"callback"}


def test_a_callback_refused_by_a_lock_held_elsewhere_is_tried_again_until_it_is_recorded(
    runner: DeadlineRunner, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def callback(db: Session, guard: Guard) -> tuple[str, None]:
        def records() -> list[Outbound]:
            db.execute(text("INSERT INTO note (name) VALUES ('callback')"))
            return []

        webhooks._quietly(db, records, guard, webhooks.AfterCommit(cast(Any, None)))
        return "recorded", None

    async def main() -> str:
        return await runner.run(callback, lambda: "empty response", keep=True)

    # another session holds the key the callback writes for 2.5 s: longer than the phone
    # line waits for a lock, alone (1.5 s), and past the callback's answer (its deadline)
    with _held_elsewhere(url, "callback", seconds=2.5):
        answer = asyncio.run(main())
        deadline = time.monotonic() + 8
        while _names(url) != {"callback"} and time.monotonic() < deadline:
            time.sleep(0.05)

    assert answer == "empty response"  # answered at its deadline, while it waited
    assert _names(url) == {"callback"}  # and recorded once the lock went
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_batch_commit_held_up_answers_after_its_grace(
    runner: DeadlineRunner, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    runner.deadline_seconds = 0.2
    assert runner.batch_engine is not None
    event.listen(runner.batch_engine, "commit", lambda conn: time.sleep(1.0))  # a flush that stalls
    rung: list[str] = []

    def places_a_leg(db: Session, guard: Guard) -> tuple[str, Callable[[], None]]:
        db.execute(text("INSERT INTO note (name) VALUES ('slow')"))
        guard.begin_commit()
        db.commit()
        return "slow", lambda: rung.append("partner")

    async def main() -> tuple[str, float]:
        started = time.monotonic()
        answer = await runner.run(places_a_leg, lambda: "apology")
        return answer, time.monotonic() - started

    answer, seconds = asyncio.run(main())
    time.sleep(1.0)  # the commit goes on

    assert answer == "apology"
    assert 0.2 + COMMIT_GRACE_SECONDS - 0.05 < seconds < 0.2 + COMMIT_GRACE_SECONDS + 0.2
    assert "outlasted its grace" in caplog.text
    # stored after all, but the caller was told the call failed: no partner is rung
    assert _names(url) == {"slow"}
    assert rung == []
    assert "stored after its apology" in caplog.text


def test_a_callback_answered_at_its_deadline_whose_batch_is_given_up_is_still_stored(
    runner: DeadlineRunner, url: str
) -> None:
    runner.deadline_seconds = 0.2
    assert runner.batch_engine is not None
    refused: list[bool] = []

    def refuse_once(conn: object) -> None:
        if not refused:
            refused.append(True)
            raise RuntimeError("the server refused the COMMIT")

    event.listen(runner.batch_engine, "commit", refuse_once)
    late = _writes("callback", before=lambda: time.sleep(0.3))  # answered before it writes

    answer = asyncio.run(runner.run(late, lambda: "empty response", keep=True))
    deadline = time.monotonic() + 5
    while _names(url) != {"callback"} and time.monotonic() < deadline:
        time.sleep(0.05)

    assert answer == "empty response"
    assert refused == [True]
    assert _names(url) == {"callback"}


def test_the_kept_driver_cursor_is_used_again_and_survives_a_failed_statement_and_a_new_connection(
    url: str,
) -> None:
    engine = make_engine(url, PHONE_LINE)
    with engine.connect() as conn:
        conn.begin()
        first, owned = driver_cursor(conn)
        assert not owned  # kept with the connection: nobody closes it
        first.execute("INSERT INTO note (name) VALUES ('a')")
        again, _ = driver_cursor(conn)
        assert again is first
        with pytest.raises(Exception, match="duplicate key"):
            again.execute("INSERT INTO note (name) VALUES ('a')")
        conn.rollback()
        conn.begin()
        after_failure, _ = driver_cursor(conn)
        after_failure.execute("SELECT count(*) FROM note")
        assert after_failure.fetchone() == (0,)  # the insert was rolled back with it
        conn.invalidate()  # the driver's connection is gone: a new one, and a new cursor
        conn.rollback()
        fresh, _ = driver_cursor(conn)
        assert fresh is not first
        fresh.execute("SELECT 1")
        assert fresh.fetchone() == (1,)
    engine.dispose()


def test_a_webhook_whose_grace_ends_while_its_batch_runs_again_is_never_stored_nor_rings(
    runner: DeadlineRunner, url: str
) -> None:
    runner.deadline_seconds = 0.3
    tries: list[str] = []
    rung: list[str] = []

    def ana(db: Session, guard: Guard) -> tuple[str, Callable[[], None]]:
        tries.append("ana")
        if len(tries) > 1:
            time.sleep(0.5)  # alone, the second time, she is slow: past her grace
        db.execute(text("INSERT INTO note (name) VALUES ('ana')"))
        guard.begin_commit()
        db.commit()
        return "ana", lambda: rung.append("bea")

    # after ana in the same batch: slow, then failing, so the batch is given up while
    # ana's deadline has passed and her grace runs
    bad = _writes("bad", fails=True, before=lambda: time.sleep(0.45))

    async def main() -> list[str]:
        return await asyncio.gather(runner.run(ana, lambda: "apology"), runner.run(bad, lambda: "apology"))

    answers = asyncio.run(main())
    time.sleep(0.8)  # whatever still runs has ended

    assert answers == ["apology", "apology"]
    assert _names(url) == set()
    assert rung == []


def test_a_webhook_near_its_deadline_runs_alone_instead_of_giving_its_batch_up(
    runner: DeadlineRunner, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    runner.deadline_seconds = 0.5
    gate = threading.Event()
    # a callback holds the batch thread until the others are close to their deadline
    first = _writes("first", before=lambda: gate.wait(5))
    slow = _writes("slow", before=lambda: time.sleep(0.1))  # its deadline passes in its work

    async def main() -> list[str]:
        held = asyncio.ensure_future(runner.run(first, lambda: "answered", keep=True))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(runner.run(work, lambda: "late")) for work in (slow, _writes("b"))]
        await asyncio.sleep(0.46)
        gate.set()
        return [await held, *[await each for each in rest]]

    answers = asyncio.run(main())
    time.sleep(0.2)

    # in one batch, "slow" passing its deadline would have given "b" up with it
    assert answers == ["answered", "late", "b"]
    assert _names(url) == {"first", "b"}
    assert "a batch was given up" not in caplog.text


def test_a_callback_whose_batch_fails_while_the_service_stops_is_still_stored(
    runner: DeadlineRunner, url: str
) -> None:
    gate = threading.Event()
    callback = _writes("callback", before=lambda: gate.wait(5))
    stopping = threading.Thread(target=runner.shutdown)

    async def main() -> list[str]:
        answers = [
            asyncio.ensure_future(runner.run(callback, lambda: "empty response", keep=True)),
            asyncio.ensure_future(runner.run(_writes("bad", fails=True), lambda: "late")),
        ]
        await asyncio.sleep(0.1)  # both in one batch, the callback holding it
        stopping.start()  # the service stops while the batch runs
        await asyncio.sleep(0.1)
        gate.set()  # "bad" then fails: the batch is given up, the callback runs again alone
        return [await each for each in answers]

    answers = asyncio.run(main())
    stopping.join(5)

    assert answers == ["callback", "apology"]
    assert _names(url) == {"callback"}
