"""The webhook fast path: the same answers and rows as the general path, and a phone line
that never waits on a lock in the event loop (SQLite inline, group commit, the writer lock)."""

from __future__ import annotations

import asyncio
import contextvars
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, delete, event, select, text
from sqlalchemy.orm import Session

from app.db import PHONE_LINE, WriterLock, make_engine
from app.deadline import COMMIT_GRACE_SECONDS, DeadlineRunner, Guard, Mode
from app.main import create_app
from app.models import Call
from app.services.outbound import Outbound, PlacePartnerLeg
from app.settings import Settings
from app.simulator.telephone import Telephone
from app.twilio import fast
from app.twilio.dialer import dialer_for
from ivr.vocab import CallKind, Outcome
from tests.conftest import ANA, BEA, FakeClock, Programme
from tests.line_work import stored_names as _names
from tests.line_work import writes as _writes

ROOM = re.compile(r"room-[0-9a-f]{24}")
# what differs between two calls by construction: their own ids, SIDs, rooms and index
OWN = {"id", "twilio_call_sid", "room"}
_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _row(call: Call) -> dict[str, Any]:
    return {c.key: getattr(call, c.key) for c in Call.__table__.columns if c.key not in OWN}


def _call_in(phone: Telephone, sid: str) -> str:
    response = phone.post(
        "/twilio/voice",
        {"CallSid": sid, "From": ANA, "To": "+18005550100", "CallStatus": "ringing", "Direction": "inbound"},
    )
    assert response.status_code == 200
    return ROOM.sub("room-R", response.text)


def _busy(programme: Programme, bea: int) -> None:
    with programme.session() as db:
        db.add(
            Call(
                twilio_call_sid="CA" + "e" * 32,
                kind=CallKind.PEER,
                initiator_id=bea,
                started_at=programme.clock(),
                outcome=Outcome.IN_PROGRESS,
            )
        )
        db.commit()


def _missed_twice(programme: Programme, bea: int, ana: int, pair: int) -> None:
    with programme.session() as db:
        for n in range(2):
            db.add(
                Call(
                    twilio_call_sid=f"CA{n:032x}",
                    kind=CallKind.PEER,
                    pair_id=pair,
                    initiator_id=bea,
                    callee_id=ana,
                    started_at=programme.clock(),
                    ended_at=programme.clock(),
                    outcome=Outcome.NO_ANSWER,
                )
            )
        db.commit()
    programme.clock.advance(hours=4)


Scenario = Callable[[Programme, int, int, int], None]
SCENARIOS: dict[str, tuple[str | None, Scenario]] = {
    "the partner is rung": (None, lambda p, a, b, pair: None),
    "the partner is in quiet hours": ("13:00-15:00", lambda p, a, b, pair: None),
    "the partner is on another call": (None, lambda p, a, b, pair: _busy(p, b)),
    "the partner missed two of her calls": (None, lambda p, a, b, pair: _missed_twice(p, b, a, pair)),
    "the pair has ended": (None, lambda p, a, b, pair: p.end_pair(pair)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_known_callers_call_gets_the_same_answer_and_row_from_the_fast_path_as_from_the_general_one(
    app: FastAPI, phone: Telephone, programme: Programme, scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet, arrange = SCENARIOS[scenario]
    ana = programme.enrol("Ana", ANA)
    bea = programme.enrol("Bea", BEA, tz="America/Chicago", quiet=quiet)
    pair = programme.pair(ana, bea)
    arrange(programme, ana, bea, pair)
    asked: list[Outbound] = []
    monkeypatch.setattr(dialer_for(app), "submit", asked.extend)

    known = fast.known_caller
    took: list[fast.Known | None] = []

    def spy(*args: Any, **kwargs: Any) -> fast.Known | None:
        took.append(known(*args, **kwargs))
        return took[-1]

    monkeypatch.setattr(fast, "known_caller", spy)
    fast_answer = _call_in(phone, "CA" + "1" * 32)
    assert took and took[0] is not None, "the fast path was not taken"
    fast_row, fast_asked = programme.call("CA" + "1" * 32), list(asked)
    with programme.session() as db:  # the partner is free again for the second call
        db.execute(delete(Call).where(Call.twilio_call_sid == "CA" + "1" * 32))
        db.commit()
    asked.clear()
    monkeypatch.setattr(fast, "known_caller", lambda *args, **kwargs: None)
    general_answer = _call_in(phone, "CA" + "2" * 32)
    general_row = programme.call("CA" + "2" * 32)

    assert fast_answer == general_answer
    assert _row(fast_row) == _row(general_row)
    assert (fast_row.room is None) == (general_row.room is None)
    assert [type(a) for a in fast_asked] == [type(a) for a in asked]
    # the partner's leg is asked for the call's own row
    for request in fast_asked:
        if isinstance(request, PlacePartnerLeg):
            assert request.call_id == fast_row.id and request.room == fast_row.room


def test_a_repeated_inbound_webhook_finds_its_call_and_writes_no_second_row(
    phone: Telephone, programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    first = _call_in(phone, "CA" + "3" * 32)
    again = _call_in(phone, "CA" + "3" * 32)

    assert "<Dial" in first and "<Dial" in again
    assert len([c for c in programme.rows(Call) if c.twilio_call_sid == "CA" + "3" * 32]) == 1


def test_the_fast_path_remembers_numbers_and_indexes_but_not_across_vaults(
    app: FastAPI, programme: Programme
) -> None:
    vault = app.state.context.vault
    assert fast.normalised("(617) 555-0101", "US") == ANA
    first = fast.blind_indexes(vault, ANA)
    assert fast.blind_indexes(vault, ANA) is first
    other = type(vault).from_secret("another-secret-key-that-is-long-enough-for-it")
    assert fast.blind_indexes(other, ANA) != first


# ---------------------------------------------------------------- how the work runs


def _table(url: str) -> Engine:
    engine = make_engine(url, PHONE_LINE)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS note (name VARCHAR(20) PRIMARY KEY)"))
    return engine


def _phone_line(tmp_path: Path, *, synchronous: str = "normal") -> tuple[Engine, DeadlineRunner]:
    """A table in a fresh SQLite file, and the phone line's runner on it."""
    url = f"sqlite:///{tmp_path}/line.db"
    return _table(url), DeadlineRunner.for_engine(make_engine(url, PHONE_LINE), url, synchronous=synchronous)


def _behind_a_held_lock(
    tmp_path: Path, *, synchronous: str = "normal"
) -> tuple[Engine, DeadlineRunner, sqlite3.Connection]:
    """The same, and another process's connection holding SQLite's writer lock: the
    webhooks wait until it commits."""
    engine, runner = _phone_line(tmp_path, synchronous=synchronous)
    other = sqlite3.connect(f"{tmp_path}/line.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return engine, runner, other


def test_a_group_commit_stores_every_webhook_but_the_one_that_failed(tmp_path: Path) -> None:
    # the webhooks queue up behind the lock and go as one batch
    engine, runner, other = _behind_a_held_lock(tmp_path, synchronous="full")
    assert runner.mode == "group"
    commits: list[str] = []
    event.listen(runner.engine, "commit", lambda conn: commits.append("commit"))

    async def main() -> list[str]:
        asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
        works = [_writes(n, fails=n == "bad") for n in ("a", "bad", "b", "c")]
        return await asyncio.gather(*(runner.run(work, lambda: "late") for work in works))

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["a", "apology", "b", "c"]
    assert _names(engine) == {"a", "b", "c"}
    assert len(commits) == 1


def test_a_group_commit_held_up_by_the_disk_answers_after_its_grace_and_the_loop_goes_on(
    tmp_path: Path,
) -> None:
    _, runner = _phone_line(tmp_path, synchronous="full")
    runner.deadline_seconds = 0.2
    event.listen(runner.engine, "commit", lambda conn: time.sleep(1.0))  # an fsync that stalls

    async def main() -> tuple[str, float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        started = time.monotonic()
        answer = await runner.run(_writes("slow"), lambda: "apology")
        seconds = time.monotonic() - started
        beat.cancel()
        return answer, seconds, ticks

    answer, seconds, ticks = asyncio.run(main())
    time.sleep(1.0)  # the commit goes on; what it stores is logged as heard with the apology
    runner.shutdown()

    assert answer == "apology"
    assert seconds < 0.2 + COMMIT_GRACE_SECONDS + 0.2
    assert ticks > 20  # the loop went on while the commit waited for the disk


def test_inline_webhooks_wait_for_a_held_writer_lock_without_stopping_the_event_loop(tmp_path: Path) -> None:
    _, runner, other = _behind_a_held_lock(tmp_path)  # another process's lock
    assert runner.mode == "inline"

    async def main() -> tuple[str, int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        started = time.monotonic()
        answer = await runner.run(_writes("waited"), lambda: "apology")
        beat.cancel()
        return answer, ticks, time.monotonic() - started

    answer, ticks, seconds = asyncio.run(main())
    runner.shutdown()

    assert answer == "waited"
    assert 0.25 < seconds < 1.0
    assert ticks > 20  # the loop went on answering while the webhook waited


def test_an_inline_webhook_that_cannot_get_the_lock_in_time_hears_the_apology_and_writes_nothing(
    tmp_path: Path,
) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)
    runner.deadline_seconds = 0.3

    started = time.monotonic()
    answer = asyncio.run(runner.run(_writes("never"), lambda: "apology"))
    seconds = time.monotonic() - started
    other.execute("COMMIT")
    runner.shutdown()

    assert answer == "apology"
    assert seconds < 0.5
    assert _names(engine) == set()


def test_inline_webhooks_waiting_together_are_committed_together_but_the_one_that_failed(
    tmp_path: Path,
) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)  # they all wait, then find the lock free at once
    commits: list[str] = []
    event.listen(runner.engine, "commit", lambda conn: commits.append("commit"))

    async def main() -> list[str]:
        asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
        works = [_writes(f"w{i}", fails=i == 3) for i in range(10)]
        return await asyncio.gather(*(runner.run(work, lambda: "apology") for work in works))

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == [f"w{i}" if i != 3 else "apology" for i in range(10)]
    assert _names(engine) == {f"w{i}" for i in range(10) if i != 3}
    assert len(commits) == 1  # one COMMIT for the nine


def test_in_a_batch_a_webhook_that_raises_or_writes_after_its_rollback_loses_only_its_own_work(
    tmp_path: Path,
) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)

    def raises(db: Session, guard: Guard) -> tuple[str, None]:
        db.execute(text("INSERT INTO note (name) VALUES ('raised')"))
        raise RuntimeError("a fault the webhook does not catch")

    def starts_over(db: Session, guard: Guard) -> tuple[str, None]:
        # it gives up what it wrote, then writes something else in a new transaction
        db.execute(text("INSERT INTO note (name) VALUES ('undone')"))
        db.rollback()
        db.execute(text("INSERT INTO note (name) VALUES ('again')"))
        db.commit()
        return "again", None

    async def main() -> list[str]:
        asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
        works = [_writes("a"), raises, _writes("b"), starts_over, _writes("c")]
        return await asyncio.gather(*(runner.run(work, lambda: "apology") for work in works))

    answers = asyncio.run(main())
    runner.shutdown()

    # a webhook never commits by itself: the one that tried hears the apology, writes nothing
    assert answers == ["a", "apology", "b", "apology", "c"]
    assert _names(engine) == {"a", "b", "c"}


def test_when_a_batch_cannot_commit_every_webhook_in_it_hears_the_apology_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)

    def refuse(conn: Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    event.listen(runner.engine, "commit", refuse)

    async def main() -> list[str]:
        asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
        return await asyncio.gather(*(runner.run(_writes(f"w{i}"), lambda: "apology") for i in range(5)))

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["apology"] * 5
    assert _names(engine) == set()


def test_a_webhook_still_waiting_at_its_deadline_is_answered_and_the_rest_go_on(tmp_path: Path) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)
    runner.deadline_seconds = 0.3

    async def main() -> list[str]:
        early = asyncio.ensure_future(runner.run(_writes("early"), lambda: "apology"))
        await asyncio.sleep(0.2)
        late = asyncio.ensure_future(runner.run(_writes("late"), lambda: "apology"))
        asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")  # at 0.4 s
        return [await early, await late]

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["apology", "late"]
    assert _names(engine) == {"late"}


def test_a_thread_waiting_for_the_writer_lock_goes_before_a_try_that_does_not_wait() -> None:
    lock = WriterLock()
    assert lock.acquire(timeout=0)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=2)))
    waiter.start()
    time.sleep(0.05)
    lock.release()
    tried = lock.acquire(timeout=0)  # the event loop's try, while the thread is still waking
    waiter.join()

    assert got == [True]
    assert tried is False
    lock.release()


@pytest.mark.parametrize(("setting", "pragma", "mode"), [("normal", 1, "inline"), ("full", 2, "group")])
def test_sqlite_synchronous_sets_the_durability_and_how_the_phone_line_commits(
    tmp_path: Path, settings: Settings, clock: FakeClock, setting: str, pragma: int, mode: str
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("a SQLite setting")
    settings.sqlite_synchronous = setting  # type: ignore[assignment]
    app = create_app(settings)
    try:
        with app.state.phone_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
        assert app.state.deadline.mode == mode
    finally:
        app.state.deadline.shutdown()
        app.state.engine.dispose()


def test_two_hundred_inbound_calls_at_once_under_group_commit_are_each_stored_once(
    tmp_path: Path, settings: Settings, clock: FakeClock
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("a SQLite setting")
    settings.sqlite_synchronous = "full"
    app = create_app(settings)
    app.state.context.clock = clock
    programme = Programme(app, clock)
    programme.enrol("Ana", ANA)  # in no pair: her calls are answered and stored all the same
    from fastapi.testclient import TestClient

    from tests.conftest import AUTH_TOKEN, PROGRAMME_NUMBER, PUBLIC_BASE_URL

    with TestClient(app) as client:
        phone = Telephone(
            client,
            public_base_url=PUBLIC_BASE_URL,
            target_base_url="http://testserver",
            auth_token=AUTH_TOKEN,
            programme_number=PROGRAMME_NUMBER,
        )
        sids = [f"CA{n:032x}" for n in range(200)]
        errors: list[BaseException] = []

        def calls(chunk: list[str]) -> None:
            try:
                for sid in chunk:
                    _call_in(phone, sid)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=calls, args=(sids[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    stored = [c.twilio_call_sid for c in programme.rows(Call)]
    assert sorted(stored) == sorted(sids)
    app.state.deadline.shutdown()


@pytest.mark.parametrize("mode", ["threads"])
def test_a_kept_callback_answers_at_its_deadline_and_is_still_stored(tmp_path: Path, mode: Mode) -> None:
    engine = _table(f"sqlite:///{tmp_path}/kept.db")
    runner = DeadlineRunner(engine, mode=mode, deadline_seconds=0.2)
    gate = threading.Event()
    stored = threading.Event()

    def slow(db: Session, guard: Guard) -> tuple[str, None]:
        db.execute(text("INSERT INTO note (name) VALUES ('callback')"))
        gate.wait(5)
        guard.begin_commit()  # a kept callback is never abandoned
        db.commit()
        stored.set()
        return "recorded", None

    async def main() -> str:
        answer = await runner.run(slow, lambda: "empty response", keep=True)
        gate.set()
        return answer

    answer = asyncio.run(main())
    assert stored.wait(5)
    runner.shutdown()

    assert answer == "empty response"
    assert _names(engine) == {"callback"}


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_a_kept_callback_in_the_loop_answers_at_its_deadline_and_is_stored_once_the_lock_frees(
    tmp_path: Path, synchronous: str
) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path, synchronous=synchronous)
    runner.deadline_seconds = 0.2

    async def main() -> str:
        asyncio.get_running_loop().call_later(0.5, other.execute, "COMMIT")
        answer = await runner.run(_writes("callback"), lambda: "empty response", keep=True)
        for _ in range(100):  # the loop goes on; the kept work commits once the lock is free
            await asyncio.sleep(0.02)
            if other.execute("SELECT count(*) FROM note").fetchone()[0]:  # a read takes no lock
                break
        return answer

    answer = asyncio.run(main())
    runner.shutdown()

    assert answer == "empty response"
    assert _names(engine) == {"callback"}


def test_in_a_batch_the_failing_webhook_runs_once_and_keeps_its_own_answer(tmp_path: Path) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)
    runs: list[str] = []

    def counted(name: str, *, fails: bool = False) -> Callable[[Session, Guard], tuple[str, None]]:
        inner = _writes(name, fails=fails)

        def work(db: Session, guard: Guard) -> tuple[str, None]:
            runs.append(name)
            return inner(db, guard)

        return work

    async def main() -> list[str]:
        asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
        works = [counted("a"), counted("bad", fails=True), counted("b")]
        return await asyncio.gather(*(runner.run(work, lambda: "late") for work in works))

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["a", "apology", "b"]
    assert runs.count("bad") == 1  # its apology is counted and logged once
    assert _names(engine) == {"a", "b"}


def test_a_callback_in_a_batch_whose_commit_fails_is_tried_again(tmp_path: Path) -> None:
    engine, runner, other = _behind_a_held_lock(tmp_path)
    failures = ["disk I/O error"]

    def once(conn: Connection) -> None:
        if failures:
            raise sqlite3.OperationalError(failures.pop())

    event.listen(runner.engine, "commit", once)

    async def main() -> list[str]:
        asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
        return await asyncio.gather(
            runner.run(_writes("call"), lambda: "apology"),
            runner.run(_writes("callback"), lambda: "empty", keep=True),
        )

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["apology", "callback"]
    assert _names(engine) == {"callback"}


def test_a_webhook_alone_on_a_quiet_line_is_stored_and_one_that_fails_after_writing_is_not(
    tmp_path: Path,
) -> None:
    engine, runner = _phone_line(tmp_path)

    async def main() -> list[str]:
        # one at a time, as a quiet line or a sequential client sends them
        return [
            await runner.run(_writes("first"), lambda: "apology"),
            await runner.run(_writes("broken", fails=True), lambda: "apology"),
            await runner.run(_writes("next"), lambda: "apology"),
        ]

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["first", "apology", "next"]
    assert _names(engine) == {"first", "next"}


def test_webhooks_that_arrive_together_on_an_idle_line_share_one_commit(tmp_path: Path) -> None:
    engine, runner = _phone_line(tmp_path)
    commits: list[int] = []
    event.listen(runner.engine, "commit", lambda conn: commits.append(1))

    async def main() -> list[str]:
        # read in the same turn of the loop, as a surge arrives: the first leads, the rest join
        return await asyncio.gather(*(runner.run(_writes(f"w{i}"), lambda: "apology") for i in range(5)))

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == [f"w{i}" for i in range(5)]
    assert _names(engine) == {f"w{i}" for i in range(5)}
    assert len(commits) == 1


def test_a_callback_alone_on_a_quiet_line_whose_commit_fails_is_tried_again_and_a_call_hears_the_apology(
    tmp_path: Path,
) -> None:
    engine, runner = _phone_line(tmp_path)
    failures = ["disk I/O error", "disk I/O error"]

    def fails_twice(conn: Connection) -> None:
        if failures:
            raise sqlite3.OperationalError(failures.pop())

    event.listen(runner.engine, "commit", fails_twice)

    async def main() -> list[str]:
        call = await runner.run(_writes("call"), lambda: "apology")
        callback = await runner.run(_writes("callback"), lambda: "empty", keep=True)
        return [call, callback]

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["apology", "callback"]
    assert _names(engine) == {"callback"}


def test_a_webhook_answered_with_the_apology_during_its_commit_sends_no_rest_request(tmp_path: Path) -> None:
    _, runner = _phone_line(tmp_path, synchronous="full")
    runner.deadline_seconds = 0.2
    event.listen(runner.engine, "commit", lambda conn: time.sleep(1.0))
    rung: list[str] = []

    def rings(db: Session, guard: Guard) -> tuple[str, Callable[[], None]]:
        db.execute(text("INSERT INTO note (name) VALUES ('call')"))
        db.commit()
        return "connecting", lambda: rung.append("partner")

    async def main() -> str:
        answer = await runner.run(rings, lambda: "apology")
        await asyncio.sleep(1.2)  # the commit ends meanwhile
        return answer

    answer = asyncio.run(main())
    runner.shutdown()

    assert answer == "apology"
    assert rung == []  # no partner's phone rings for a call its caller was told had failed


def test_an_apology_the_line_gives_is_counted_against_its_own_request(tmp_path: Path) -> None:
    _, runner = _phone_line(tmp_path)
    refused = [True]

    def refuse(conn: Connection) -> None:
        if refused:
            refused.pop()
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(runner.engine, "begin", refuse)
    whose: contextvars.ContextVar[str] = contextvars.ContextVar("whose", default="nobody")
    heard: list[str] = []

    async def request(name: str) -> str:
        whose.set(name)
        return await runner.run(_writes(name), lambda: heard.append(whose.get()) or "apology")

    async def main() -> list[str]:
        return await asyncio.gather(request("R1"), request("R2"))

    answers = asyncio.run(main())
    runner.shutdown()

    assert answers == ["apology", "apology"]
    assert sorted(heard) == ["R1", "R2"]


def test_a_fast_path_call_that_fails_after_writing_its_row_keeps_none_and_its_batch_keeps_the_rest(
    app: FastAPI, phone: Telephone, programme: Programme, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # in a batch the fast path writes on the batch's connection itself, outside the
    # session: a step failing after that write must still take its row out of the batch
    ana, bea = programme.enrol("Ana", ANA), programme.enrol("Bea", BEA)
    programme.pair(ana, bea)
    monkeypatch.setattr(dialer_for(app), "submit", lambda requests: None)
    bad = "CA" + "b" * 32
    write = fast.write_call

    def fails_after_writing(db: Session, call: Call, outbound: list[Outbound]) -> list[Outbound] | None:
        written = write(db, call, outbound)
        if call.twilio_call_sid == bad:
            raise RuntimeError("a fault after the call's row was written")
        return written

    monkeypatch.setattr(fast, "write_call", fails_after_writing)
    sids = ["CA" + "1" * 32, bad, "CA" + "2" * 32]
    answers: dict[str, str] = {}
    held = None
    if settings.database_url.startswith("sqlite"):
        # another connection holds the writer lock: the three calls wait, then go as one batch
        held = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
        held.execute("BEGIN IMMEDIATE")

    def call_in(sid: str) -> None:
        answers[sid] = _call_in(phone, sid)

    threads = [threading.Thread(target=call_in, args=(sid,)) for sid in sids]
    for t in threads:
        t.start()
    if held is not None:
        time.sleep(0.3)
        held.execute("COMMIT")
        held.close()
    for t in threads:
        t.join()

    apology = "cannot connect your call right now"
    assert apology in answers[bad]
    assert all(apology not in answers[sid] for sid in sids if sid != bad)
    assert sorted(c.twilio_call_sid for c in programme.rows(Call)) == sorted(s for s in sids if s != bad)


def test_a_step_commits_what_it_did_through_its_session_and_begins_nothing_for_nothing(
    tmp_path: Path,
) -> None:
    from app.migrate import upgrade
    from app.twilio.webhooks import _commit

    url = f"sqlite:///{tmp_path}/commit.db"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as db:
        _commit(db)  # nothing to commit: no transaction is begun for nothing
        assert not db.in_transaction()
        db.add(
            Call(
                twilio_call_sid="CA" + "a" * 32,
                kind=CallKind.PEER,
                started_at=_NOW,
                outcome=Outcome.IN_PROGRESS,
            )
        )
        _commit(db)
    with Session(engine) as db:
        assert db.scalars(select(Call.twilio_call_sid)).one() == "CA" + "a" * 32
