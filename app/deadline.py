"""The phone line never waits: a webhook answers within its deadline, whatever the database does.

Each webhook's work runs on threads of the phone line's own, so stuck console or API
requests cannot starve the phone line (and stuck webhooks cannot starve them). When the
deadline passes first, the caller gets the fallback answer (the spoken apology) and the
work is abandoned: it rolls back instead of committing, so a request that missed its
deadline leaves no partial rows. A commit that had already begun is given a short grace
to finish, so what the caller hears and what is stored never disagree.

How the work runs depends on the database (`DeadlineRunner.for_engine`):

- SQLite (**inline**, `SQLITE_SYNCHRONOUS=normal`): in the event loop itself. A
  webhook's work is a fraction of a millisecond of CPU and a few SQLite calls, so a
  thread hop per webhook (and a pool of threads fighting the event loop for the GIL)
  cost more than the work. The loop never waits for a lock: the writer lock is tried
  without waiting (busy timeout 0), and while another connection holds it the webhooks
  wait asynchronously and it is tried again, until each one's deadline. Webhooks waiting
  together when the lock is had run one after another in one transaction under one
  COMMIT (a commit writes a page of every index a call row touches: shared, not
  repeated). A webhook never commits by itself: if one fails or rolls back, the batch's
  transaction is given up; that webhook keeps its own answer (its apology) and the
  others run again together. A webhook that finds the line empty leads its own
  batch, after one turn of the loop in which the requests already read join it; a
  leader's task takes over whenever the lock must be waited for or a batch follows. The
  COMMIT runs on a thread of its own while the loop parses the next requests, which
  form the next batch (the commit's writes release the GIL: the two overlap); a lone
  webhook with nobody behind it commits in the loop. A deadline
  that passes during a commit gets a short grace, then the apology. The WAL is
  checkpointed by a thread, so no commit waits for a checkpoint's fsync.
- SQLite, `SQLITE_SYNCHRONOUS=full` (**group**): the same; each COMMIT also waits for
  its fsync, on that thread, and one fsync serves every webhook of the batch. Each
  webhook's work is still committed before its answer goes back.
- PostgreSQL (**batch**): off the loop (a statement there can wait on a row lock or a
  hung server: never in the loop). A few batch threads each take whoever is waiting and
  run their work in turn in one transaction, on a connection of its own, under one
  COMMIT: one round trip and one WAL flush for the batch instead of a BEGIN, a COMMIT
  and a flush per webhook, and no pool checkout (with its ping) per webhook. Per-webhook
  commits held the phone line under a fifth of a bare app's throughput on two cores.
  Reads the batch's webhooks would each make in turn can be made together before it
  runs (`ReadAhead`: the known callers of a surge, app/twilio/fast.py). A
  batch does not wait for a lock held elsewhere for more than a tenth of a second. On
  any trouble (a webhook that fails, a lock, a refused COMMIT) nothing of the batch is
  stored, and each of its webhooks runs again **alone**, as below: one failing
  webhook or one locked row then holds up only itself.
- **threads** (PostgreSQL's webhooks run again alone): a few threads run one webhook
  each, one transaction each, with the phone line's usual limits.

Callbacks (call status, conference, recording) are different: nobody listens to their
answer, and Twilio does not send one again, so a callback that misses its deadline is
answered (an empty `<Response/>`) but its work is **kept**: it goes on and commits when
the database lets it, up to `LATE_SECONDS` after arrival. Abandoning it would lose the
call's end or a care-team message for good.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.db import holds_writes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Twilio waits 15 s, the design promises 3 s; leave room for the network and the proxy.
DEFAULT_DEADLINE_SECONDS = 2.0
COMMIT_GRACE_SECONDS = 0.4
# a batch takes at most this many webhooks: it must stay a few milliseconds
MAX_BATCH = 32
# PostgreSQL: how many batches run at once. Each waits on the network for every statement
# of its webhooks in turn, so one alone left the cores idle between round trips; more
# than two made the batches smaller, their COMMITs more, and the whole slower (webhook
# bench: 1 thread 0.14×, 2 threads 0.20×, 4 threads 0.18–0.19× of bare).
BATCH_THREADS = 2
# a webhook with less than this part of its deadline left runs alone rather than in a batch
LAST_MOMENT = 0.1
# how long a callback's kept work may still wait for the database after its answer
LATE_SECONDS = 30.0


class Abandoned(Exception):
    """The answer has already gone back without this work: do not commit it."""


class BatchClosed(Exception):
    """A webhook in a batch tried to commit a transaction other than the batch's."""


class Refused(Exception):
    """The database refused one webhook of a batch its work (a row locked elsewhere, a
    statement too slow, a cut connection): it alone is to wait, the rest go on."""

    def __init__(self, item: _Item[Any]) -> None:
        super().__init__("the database refused a webhook of the batch")
        self.item = item


class Guard:
    """Shared between the waiting request and its worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._committing = False
        self._delivered = False
        # running in a PostgreSQL batch, which a failure gives up: the work then runs
        # again alone, so a failure here is the batch's, not the webhook's to answer
        self.batched = False
        # a kept callback the database refuses (a lock held elsewhere, a cut connection)
        # is tried again until then (time.monotonic): the refusal is not yet its loss
        self.retry_until = 0.0
        self.refusals = 0

    def begin_commit(self) -> None:
        """Call right before committing; raises Abandoned when the answer has already gone."""
        with self._lock:
            if self._abandoned:
                raise Abandoned
            self._committing = True

    def abandon(self) -> bool:
        """True when the worker had not started to commit, and now never will."""
        with self._lock:
            if self._committing:
                return False
            self._abandoned = True
            return True

    def too_late(self) -> bool:
        """The grace after the deadline has passed too: True when the caller is to hear
        the apology, and the work, if it is ever stored, sends nothing; False when the
        work has been stored and its answer is on its way (`deliver` came first)."""
        with self._lock:
            if self._delivered:
                return False
            self._abandoned = True
            return True

    def deliver(self) -> bool:
        """The work is stored: True when its answer is still to be heard (and its REST
        requests may go), False when the caller has heard the apology (`too_late` came
        first). A kept callback is never too late."""
        with self._lock:
            if self._abandoned:
                return False
            self._delivered = True
            return True

    def retry(self) -> bool:
        """The work is to run again (its batch was given up): True unless its answer has
        already gone back. Its first try's begin_commit no longer counts: a deadline that
        passes now abandons it instead of waiting for a commit that is not under way."""
        with self._lock:
            self._committing = False
            return not self._abandoned

    @property
    def abandoned(self) -> bool:
        with self._lock:
            return self._abandoned

    def tries_again(self, exc: BaseException) -> bool:
        """Whether this failure is one the phone line tries again (see retry_until)."""
        return refused(exc) and time.monotonic() < self.retry_until

    def runs_again(self, exc: BaseException) -> bool:
        """Whether the phone line runs the work again after this failure (its batch is
        given up, or the database refused a callback it tries again): then the failure
        is not the webhook's to answer, and it is raised to the runner."""
        return self.batched or self.tries_again(exc)


def refused(exc: BaseException) -> bool:
    """The database refused the work (a lock or statement timeout, a cut connection, an
    exhausted pool), as opposed to the work itself failing."""
    return isinstance(exc, OperationalError | SATimeoutError)


# A webhook's work: given its session and guard, it decides, records, commits (in a batch:
# flushes into the batch's transaction) and returns the answer, plus what must happen only
# once the work is durably committed (REST requests to Twilio), or None.
Work = Callable[[Session, Guard], tuple[T, Callable[[], None] | None]]


@dataclass(eq=False)
class _Item(Generic[T]):
    """A webhook's work in line for a thread. Its answer is set in the event loop, a
    batch's answers with one wake-up of the loop (a wake-up per answer, and asyncio's
    wrapping of a thread's future, cost the loop more than reading the next request)."""

    work: Work[T]
    guard: Guard
    context: contextvars.Context
    answer: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    kept: bool = False  # a callback: its work counts even after its answer has gone
    due: float = float("inf")  # its deadline (time.monotonic)
    alone: bool = False  # batch mode: handed to the phone line's threads to run alone
    ahead: bool = True  # batch mode: its read may be made ahead, its row held back

    @property
    def answered(self) -> bool:
        return self.answer.done()

    def settle(self, value: T) -> None:
        """From a thread: the work's answer."""
        _from_thread(self.loop, [(self, value, None)])

    def fail(self, exc: BaseException) -> None:
        """From a thread: the work could not answer."""
        _from_thread(self.loop, [(self, None, exc)])


class ReadAhead(Protocol):
    """Reads a batch's webhooks would each make in turn, made at once before the batch
    runs (app/twilio/fast.py: a surge's known callers, one round trip for all)."""

    def before(self, conn: Connection, contexts: Sequence[contextvars.Context]) -> None: ...

    def goes_first(self, context: contextvars.Context) -> bool:
        """Whether the webhook runs before the batch's others (one whose read was made
        ahead, before anything the others write can make it stale)."""

    def after_each(self, conn: Connection) -> None:
        """A webhook of the batch has run (its work is in the batch's transaction)."""

    def commit(self, conn: Connection) -> None:
        """The batch's COMMIT (with any writes its webhooks held back)."""

    def after(self, conn: Connection) -> None:
        """The batch is over, committed or not."""


_Outcome = tuple[_Item[Any], Any, BaseException | None]


def _from_thread(loop: asyncio.AbstractEventLoop, outcomes: list[_Outcome]) -> None:
    try:
        loop.call_soon_threadsafe(_answer_all, outcomes)
    except RuntimeError:
        log.debug("the event loop has closed: %d answers dropped", len(outcomes))


def _answer_all(outcomes: list[_Outcome]) -> None:
    """In the loop: each answer that has not gone back yet (the fallback may have)."""
    for item, value, exc in outcomes:
        answer = item.answer
        if answer.done():
            if exc is not None:  # its answer went back without it: expected, and handled
                log.debug("abandoned webhook work ended with %s", type(exc).__name__)
            continue
        if exc is None:
            answer.set_result(value)
        else:
            answer.set_exception(exc)


@dataclass(eq=False)
class _Waiting(Generic[T]):
    """An inline webhook in line for the writer lock."""

    work: Work[T]
    fallback: Callable[[], T]
    started: float
    deadline: float
    kept: bool
    future: asyncio.Future[T]
    # the request's context: its log lines keep the call's request id, though its work runs
    # in the task that took the lock
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    # answered with the fallback while its COMMIT was under way: if that COMMIT succeeds
    # after all, its REST requests are not sent (the caller was told the call failed)
    gave_up: bool = False


_Done = tuple[_Waiting[Any], Any, Callable[[], None] | None]


def _settle(waiting: _Waiting[Any], value: Any) -> None:
    if not waiting.future.done():
        waiting.future.set_result(value)


def _fallback(waiting: _Waiting[Any]) -> Any:
    """The fallback answer, made in the webhook's own context: what it counts and logs
    (an apology, a missed deadline) is its own request's, not the leader's."""
    return waiting.context.run(waiting.fallback)


Mode = Literal["inline", "group", "threads", "batch"]
CHECKPOINT_SECONDS = 0.5
# how long an inline webhook sleeps between tries for the writer lock, at most
RETRY_MAX_SECONDS = 0.01
# how long the line waits before trying a database that refused it again (callbacks only)
REFUSED_RETRY_SECONDS = 0.1


class DeadlineRunner:
    """Runs webhooks' work under their deadline: in the event loop, in batches committed
    on a thread of their own (`inline`, and `group` with an fsync per commit), on
    `workers` threads with one transaction each (`threads`), or in batches on
    `batch_threads` threads, any trouble sending a batch's webhooks to those `workers`
    (`batch`)."""

    def __init__(
        self,
        engine: Engine,
        *,
        mode: Mode = "threads",
        workers: int = 8,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        batch_engine: Engine | None = None,
        batch_threads: int = BATCH_THREADS,
    ) -> None:
        self.deadline_seconds = deadline_seconds
        self.engine = engine
        self.mode = mode
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._queue: queue.SimpleQueue[_Item[Any] | None] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._workers = workers if mode in ("threads", "batch") else 0
        in_loop = mode in ("inline", "group")
        # in the loop's modes the COMMIT (and its writes or fsync) runs here, off the loop
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="commit") if in_loop else None
        # batch: the webhooks waiting for the batch thread, and its engine (one connection)
        self._batches: queue.SimpleQueue[_Item[Any] | None] = queue.SimpleQueue()
        self._batch_engine = batch_engine
        self._batch_threads = batch_threads if mode == "batch" else 0
        # reads the batch's webhooks would each make, made together before it runs
        self.read_ahead: ReadAhead | None = None
        self._batchers: list[threading.Thread] = []
        self._committing: set[int] = set()  # the webhooks whose COMMIT is under way
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()
        self._conn: Connection | None = None
        # inline: the webhooks waiting for the writer lock, and the task that takes it for them
        self._waiting: list[_Waiting[Any]] = []
        self._leader: asyncio.Task[None] | None = None
        self._leading = False  # a webhook is leading its own batch (_lead_own_batch)
        self.missed = 0  # answers given by the fallback because the deadline passed
        if in_loop:
            event.listen(engine, "commit", _only_the_batch_commits)
        if mode == "batch":
            if batch_engine is None:
                raise ValueError("the batch mode needs an engine for its batches")
            event.listen(batch_engine, "commit", _only_the_batch_commits)
            holds_writes(batch_engine)  # a batch's webhooks may hold their rows back

    @property
    def batch_engine(self) -> Engine | None:
        """The batches' own engine (`batch` mode), one connection per batch thread."""
        return self._batch_engine

    @classmethod
    def for_engine(
        cls, engine: Engine, url: str, *, synchronous: str = "normal", **engine_kwargs: Any
    ) -> DeadlineRunner:
        """The phone line's runner for this database (see the module's docstring)."""
        from app.db import PHONE_LINE_BATCH, PHONE_LINE_INLINE, make_engine

        if engine.dialect.name != "sqlite":
            return cls(engine, mode="batch", batch_engine=make_engine(url, PHONE_LINE_BATCH, **engine_kwargs))

        full = synchronous == "full"
        inline = make_engine(
            url, PHONE_LINE_INLINE, synchronous="full" if full else "normal", **engine_kwargs
        )
        return cls(inline, mode="group" if full else "inline")

    def _start(self) -> None:
        """The threads start with the first webhook: an app that never answers one (a
        command, a test of the console) starts none."""
        with self._starting:
            if self._threads or self._stopped.is_set():
                return
            self._threads = [
                threading.Thread(target=self._serve, name=f"webhook-{i}", daemon=True)
                for i in range(self._workers)
            ]
            if self.mode in ("inline", "group"):
                self._threads.append(
                    threading.Thread(target=self._checkpoint, name="wal-checkpoint", daemon=True)
                )
            self._batchers = [
                threading.Thread(target=self._batcher, name=f"webhook-batch-{i}", daemon=True)
                for i in range(self._batch_threads)
            ]
            self._threads += self._batchers
            for thread in self._threads:
                thread.start()

    async def run(
        self, work: Work[T], fallback: Callable[[], T], *, arrived: float | None = None, keep: bool = False
    ) -> T:
        """The work's answer, or the fallback once the deadline has passed. `keep`: the work
        still counts after the fallback has answered (a callback, see the module's docstring)."""
        started = arrived if arrived is not None else time.monotonic()
        if not self._threads:
            self._start()
        remaining = max(0.05, self.deadline_seconds - (time.monotonic() - started))
        if self.mode in ("inline", "group"):
            return await self._inline(work, fallback, started, remaining, keep)
        return await self._off_loop(work, fallback, started, remaining, keep)

    def shutdown(self) -> None:
        with self._starting:
            self._stopped.set()
        # the batches first: a batch given up as the service stops sends its webhooks to
        # the threads below, which must still be there to run them (a callback's work
        # must not be lost)
        for _ in self._batchers:
            self._batches.put(None)
        for thread in self._batchers:
            thread.join(timeout=self.deadline_seconds)
        for _ in self._threads:
            self._queue.put(None)
        if self._committer is not None:
            # a COMMIT under way finishes before its connection is closed
            self._committer.shutdown(wait=True)
        if self.mode in ("inline", "group"):
            self._drop()
            self.engine.dispose()
        if self._batch_engine is not None:
            self._batch_engine.dispose()

    def _answered_early(self, fallback: Callable[[], T]) -> T:
        metrics.deadline_missed()
        log.warning("a callback is answered before it is recorded; its work goes on")
        return fallback()

    def _missed(self, started: float) -> None:
        self.missed += 1
        metrics.deadline_missed()
        log.warning(
            "webhook deadline passed after %.2f s; the caller hears the apology", time.monotonic() - started
        )

    # ------------------------------------------------------------ in the event loop

    async def _inline(
        self, work: Work[T], fallback: Callable[[], T], started: float, remaining: float, keep: bool
    ) -> T:
        loop = asyncio.get_running_loop()
        waiting: _Waiting[T] = _Waiting(
            work,
            fallback,
            started,
            started + (LATE_SECONDS if keep else self.deadline_seconds),
            keep,
            loop.create_future(),
        )
        self._waiting.append(waiting)
        # a timer rather than asyncio.wait_for: on the path of every webhook, wait_for's
        # extra futures and callbacks cost more than a timer handle
        due = loop.call_later(remaining, self._due, waiting)
        try:
            if self._nobody_leads():
                if len(self._waiting) == 1:
                    await self._lead_own_batch()
                else:
                    self._follow()
            return waiting.future.result() if waiting.future.done() else await waiting.future
        finally:
            due.cancel()

    def _nobody_leads(self) -> bool:
        return not self._leading and (self._leader is None or self._leader.done())

    def _follow(self) -> None:
        """The leader's task, for whoever is in line, unless someone leads already."""
        if self._waiting and self._nobody_leads():
            # in a context of its own: it serves every request, and belongs to none
            self._leader = asyncio.get_running_loop().create_task(self._lead(), context=contextvars.Context())

    async def _lead_own_batch(self) -> None:
        """A webhook that finds the line empty leads one batch itself, in its own task: a
        leader's task and the turns of the loop it takes cost a lone webhook (a quiet line,
        a sequential client) more than its statements. It first lets the loop go round
        once, so that the requests already read in this turn join its batch, as they join
        the leader's. When the writer lock cannot be had at once, or the database
        refuses, or the line is stopping, the leader's task takes over: it waits, retries
        and apologises as the module's docstring says."""
        self._leading = True
        try:
            await asyncio.sleep(0)
            self._expire()
            if not self._waiting or self._stopped.is_set():
                return
            try:
                conn = self._connection()
                conn.begin()  # BEGIN IMMEDIATE, without waiting (app/db.py)
            except Exception:
                return
            done = self._work(conn, self._next_batch())
            if done is None:
                return
            if self._commits_in_loop(done):
                if self._commit_now(conn, done):
                    self._deliver(done)
                return
            # the COMMIT goes to its thread: a task waits for it, so that this webhook's
            # own deadline (and grace) still hold while the disk is slow; from now on a
            # deadline that passes finds them being committed
            self._committing = {id(waiting) for waiting, _, _ in done}
            self._leader = asyncio.get_running_loop().create_task(
                self._commit_and_lead(conn, done), context=contextvars.Context()
            )
        finally:
            self._leading = False
            # those who came while it led, or did not fit in its batch, or itself if the
            # lock was taken: the leader's task goes on with them
            self._follow()

    def _due(self, waiting: _Waiting[Any]) -> None:
        """The deadline has passed. Nothing awaits between a webhook's work and its COMMIT
        but the COMMIT itself, so a webhook not answered yet is either still in line (it
        never runs) or being committed (a short grace)."""
        if waiting.future.done():
            return
        if id(waiting) in self._committing:
            # its COMMIT is under way: a short grace, so that what the caller hears and
            # what is stored agree
            loop = asyncio.get_running_loop()
            loop.call_later(COMMIT_GRACE_SECONDS, self._commit_outlasted, waiting)
            return
        if not waiting.kept and waiting in self._waiting:
            self._waiting.remove(waiting)  # it never runs
        self._too_late(waiting)

    def _too_late(self, waiting: _Waiting[Any]) -> None:
        """Answered now with the fallback: a callback stays in line and is still recorded;
        a voice step has missed its deadline."""
        if waiting.kept:
            waiting.future.set_result(waiting.context.run(self._answered_early, waiting.fallback))
            return
        waiting.context.run(self._missed, waiting.started)
        waiting.future.set_result(_fallback(waiting))

    async def _lead(self) -> None:
        """Take the writer lock for everyone waiting, run their work and commit it together.

        While another connection holds the lock, the loop sleeps and tries again, never
        waiting in SQLite. With the lock, every webhook then waiting runs in turn in one
        transaction, and one COMMIT stores them all: under a surge the commit's writes (a
        page of each index the call row touches) are shared instead of repeated.
        """
        delay = 0.0005
        while self._waiting:
            if self._stopped.is_set():
                self._stop_line()
                return
            self._expire()
            if not self._waiting:
                return
            try:
                conn = self._connection()
                conn.begin()  # BEGIN IMMEDIATE, without waiting (app/db.py)
            except OperationalError as exc:
                if not _locked(exc):
                    self._refused("the database refused a webhook's transaction")
                    await asyncio.sleep(REFUSED_RETRY_SECONDS)  # callbacks may still be in line
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            except Exception:
                self._refused("no connection for a webhook")
                await asyncio.sleep(REFUSED_RETRY_SECONDS)
                continue
            delay = 0.0005
            done = self._work(conn, self._next_batch())
            if done is not None and await self._commit(conn, done):
                self._deliver(done)
            # let the requests that arrived meanwhile join the next batch
            await asyncio.sleep(0)

    async def _commit_and_lead(self, conn: Connection, done: list[_Done]) -> None:
        if await self._commit(conn, done):
            self._deliver(done)
        await asyncio.sleep(0)
        await self._lead()

    def _deliver(self, done: list[_Done]) -> None:
        """The batch is committed: each webhook's REST requests go, and its answer."""
        for waiting, value, after in done:
            _after_commit(waiting.context, not waiting.gave_up, after)
            _settle(waiting, value)

    def _next_batch(self) -> list[_Waiting[Any]]:
        """Everyone waiting, up to MAX_BATCH."""
        batch = self._waiting[:MAX_BATCH]
        del self._waiting[:MAX_BATCH]
        return batch

    def _commit_outlasted(self, waiting: _Waiting[Any]) -> None:
        if waiting.future.done():
            return
        if not waiting.kept:
            waiting.gave_up = True
            waiting.context.run(
                log.error, "a webhook's commit outlasted its grace; the caller hears the apology"
            )
        self._too_late(waiting)

    def _expire(self) -> None:
        """A webhook still in line at its deadline hears the fallback and never runs; a
        callback (answered already) is given up after LATE_SECONDS."""
        now = time.monotonic()
        for waiting in [w for w in self._waiting if w.deadline <= now]:
            self._waiting.remove(waiting)
            if waiting.kept:
                waiting.context.run(
                    log.warning,
                    "a callback was not recorded: the database was unusable for %.0f s",
                    LATE_SECONDS,
                )
            if not waiting.future.done():
                self._too_late(waiting)

    def _stop_line(self) -> None:
        """The service is stopping: whoever is still in line hears the fallback."""
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            if each.kept:
                each.context.run(log.warning, "a callback was not recorded: the service stopped")
            _settle(each, _fallback(each))

    def _refused(self, why: str) -> None:
        """The database refused the batch's transaction: every webhook waiting hears the
        apology now; callbacks stay in line and are tried again, up to LATE_SECONDS."""
        self._drop()
        waiting, self._waiting = self._waiting, []
        answered = 0
        for each in waiting:
            if each.kept:
                self._waiting.append(each)
            elif not each.future.done():
                each.future.set_result(_fallback(each))
                answered += 1
        # while only callbacks are tried again, once a tenth of a second: not a line each time
        (log.warning if answered else log.debug)("%s; %d webhooks hear the apology", why, answered)

    def _work(self, conn: Connection, batch: list[_Waiting[Any]]) -> list[_Done] | None:
        """Each webhook's work, in turn, in the transaction begun for the batch; None when
        the batch has given its transaction up (nothing of it is stored)."""
        transaction = conn.get_transaction()
        # the connection's own record, which outlives its closing when the batch is given up
        info = conn.info
        info[_IN_BATCH] = True
        done: list[_Done] = []
        try:
            for waiting in batch:
                # the webhook's own commit() only flushes into the shared transaction; its
                # rollback (a webhook that failed) ends it for all: no savepoints, which cost
                # each webhook more than the commit they share
                db = Session(bind=conn, join_transaction_mode="rollback_only", expire_on_commit=False)
                value: Any = None
                try:
                    value, after = waiting.context.run(waiting.work, db, Guard())
                    failed = False
                except Exception:
                    waiting.context.run(log.exception, "a webhook's work failed")
                    failed = True
                finally:
                    _close(db)
                kept = transaction is not None and conn.get_transaction() is transaction
                if not failed and kept and transaction is not None and transaction.is_active:
                    done.append((waiting, value, after))
                    continue
                self._give_up(conn)
                # its failure is its own: its answer (its own apology, or the fallback if
                # it could not even answer) stands; the others run again, together
                _settle(waiting, _fallback(waiting) if failed else value)
                self._waiting[:0] = [w for w in batch if w is not waiting]
                return None
            return done
        finally:
            info[_IN_BATCH] = False

    def _give_up(self, conn: Connection) -> None:
        """Rolled back on the driver's connection, and closed: after a refused commit the
        engine's idea of the transaction may be half-ended while SQLite's is still open
        (with the writer lock). A new connection costs little on this rare path."""
        try:
            raw = conn.connection.dbapi_connection
            if raw is not None:
                raw.rollback()
        except Exception:
            log.debug("rolling back a given-up batch failed", exc_info=True)
        self._drop()

    async def _commit(self, conn: Connection, done: list[_Done]) -> bool:
        """COMMIT on the committer thread, while the loop goes on with the next requests
        (in the loop when there are none and no fsync to wait for)."""
        assert self._committer is not None  # the loop's modes have one
        if self._commits_in_loop(done):
            return self._commit_now(conn, done)
        self._committing = {id(waiting) for waiting, _, _ in done}
        try:
            await asyncio.get_running_loop().run_in_executor(self._committer, conn.commit)
            return True
        except Exception:
            self._commit_failed(conn, done)
            return False
        finally:
            self._committing = set()

    def _commits_in_loop(self, done: list[_Done]) -> bool:
        """One webhook and nobody behind it: nothing to overlap the commit with, and without
        an fsync it is quicker than the hop to the commit thread and back."""
        return self.mode == "inline" and len(done) <= 1 and not self._waiting

    def _commit_now(self, conn: Connection, done: list[_Done]) -> bool:
        """COMMIT in the loop, now."""
        try:
            conn.commit()
            return True
        except Exception:
            self._commit_failed(conn, done)
            return False

    def _commit_failed(self, conn: Connection, done: list[_Done]) -> None:
        self._give_up(conn)
        # nothing of this batch is stored: no webhook of it may say otherwise; callbacks
        # go back in line, to be tried again up to LATE_SECONDS
        log.exception("a batch's COMMIT failed; its webhooks hear the apology")
        for waiting, _, _ in done:
            if waiting.kept:
                self._waiting.append(waiting)
            else:
                _settle(waiting, _fallback(waiting))

    def _connection(self) -> Connection:
        """The event loop's own connection, kept between webhooks: only the loop uses it,
        one webhook at a time, and a checkout from the pool per webhook cost more than
        the webhook's statements."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self.engine.connect()
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing a failed connection failed too", exc_info=True)

    def _checkpoint(self) -> None:
        """The inline connection never checkpoints (its fsync would stall the event loop)."""
        while not self._stopped.wait(CHECKPOINT_SECONDS):
            try:
                raw = self.engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.close()
                finally:
                    raw.close()
            except Exception:
                log.debug("WAL checkpoint skipped", exc_info=True)

    # ------------------------------------------------------------ off the loop: batches, threads

    async def _off_loop(
        self, work: Work[T], fallback: Callable[[], T], started: float, remaining: float, keep: bool
    ) -> T:
        """The work in line for the batch threads (`batch`) or the phone line's threads
        (`threads`), its answer awaited under timers (asyncio's wrapping of a thread's future
        and its waiting cost the loop more, on the path of every webhook)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        guard = Guard()
        if keep:
            guard.retry_until = started + LATE_SECONDS
        item: _Item[T] = _Item(
            work,
            guard,
            contextvars.copy_context(),
            answer=answer,
            loop=loop,
            kept=keep,
            due=time.monotonic() + remaining,
        )
        (self._batches if self.mode == "batch" else self._queue).put(item)
        # a context of the request's own for the timer: a context is entered by one thread
        # at a time, and the work's may be entered on the batch thread just then
        due = loop.call_later(
            remaining, self._off_loop_due, item, fallback, started, keep, context=contextvars.copy_context()
        )
        try:
            return await answer
        except Exception:
            # the work could not even answer for itself (its transaction failed): nothing
            # of it is stored, and the caller hears the apology
            log.warning("a webhook's transaction failed; the caller hears the apology")
            return fallback()
        finally:
            due.cancel()

    def _off_loop_due(self, item: _Item[T], fallback: Callable[[], T], started: float, keep: bool) -> None:
        """The deadline has passed (in the webhook's own context): a callback is answered
        and its work goes on; a webhook not being committed never runs; one being
        committed is given a short grace."""
        answer = item.answer
        if answer.done():
            return
        if keep:
            answer.set_result(self._answered_early(fallback))
        elif item.guard.abandon():
            self._missed(started)
            answer.set_result(fallback())
        else:
            grace = contextvars.copy_context()
            later = self._off_loop_grace
            item.loop.call_later(COMMIT_GRACE_SECONDS, later, item, fallback, started, context=grace)

    def _off_loop_grace(self, item: _Item[T], fallback: Callable[[], T], started: float) -> None:
        answer = item.answer
        if answer.done() or not item.guard.too_late():
            return  # answered, or stored with its answer on the way to the loop
        log.error("a webhook's commit outlasted its grace; the caller hears the apology")
        self._missed(started)
        answer.set_result(fallback())

    def _batcher(self) -> None:
        """The batch thread: whoever is waiting, up to MAX_BATCH, in one transaction."""
        assert self._batch_engine is not None  # the batch mode has one
        conn: Connection | None = None
        while True:
            first = self._batches.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._batches.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            batch = [item for item in batch if not item.guard.abandoned]
            if batch:
                try:
                    if conn is None or conn.closed or conn.invalidated:
                        conn = self._batch_engine.connect()
                    self._run_batch(conn, batch)
                except Refused as exc:
                    # one webhook's row is locked elsewhere, say: it alone runs again alone,
                    # with the phone line's longer lock timeout; the others, in a batch again
                    # (run alone too, they would wait behind it on the phone line's threads)
                    cause = type(exc.__cause__).__name__
                    log.warning("a batch was given up (%s); its webhook runs again alone", cause)
                    self._batch_failed(conn, batch, only=exc.item)
                    conn = None
                except BaseException as exc:  # never let the thread die: the phone line has no other
                    if refused(exc) and any(item.ahead for item in batch):
                        # refused outside any one webhook's work: a row held back met a lock
                        # at the COMMIT, say (app/twilio/fast.py). Whose is not known: the
                        # batch runs again, each webhook reading and writing for itself, so
                        # that the one refused is found and waits alone
                        log.warning("a batch was given up (%s); it runs again", type(exc).__name__)
                        self._batch_failed(conn, batch, again=True)
                    else:
                        log.warning(
                            "a batch was given up (%s); its webhooks run again alone", type(exc).__name__
                        )
                        self._batch_failed(conn, batch)
                    conn = None
            if stop:
                break
        if conn is not None:
            conn.close()

    def _run_batch(self, conn: Connection, batch: list[_Item[Any]]) -> None:
        """Each webhook's work in turn, in one transaction on the batch thread's connection,
        and one COMMIT for them all (one round trip and one WAL flush instead of one per
        webhook). Any trouble (a failed step, a lock held elsewhere, a refused COMMIT) gives
        the whole transaction up, and each webhook runs again alone on the phone line's
        threads, with its own transaction: the reference path, where a lock or a fault
        holds up only the webhook it concerns."""
        transaction = conn.begin()
        done: list[tuple[_Item[Any], Any, Callable[[], None] | None]] = []
        ahead = self.read_ahead
        try:
            self._batch_work(conn, transaction, batch, done)
            if ahead is not None:
                ahead.commit(conn)
            else:
                conn.commit()
        finally:
            if ahead is not None:
                ahead.after(conn)
        outcomes: list[_Outcome] = []
        for item, value, after in done:
            _after_commit(item.context, item.guard.deliver(), after)
            outcomes.append((item, value, None))
        if outcomes:
            _from_thread(outcomes[0][0].loop, outcomes)

    def _batch_work(
        self,
        conn: Connection,
        transaction: RootTransaction,
        batch: list[_Item[Any]],
        done: list[tuple[_Item[Any], Any, Callable[[], None] | None]],
    ) -> None:
        conn.info[_IN_BATCH] = True
        ahead = self.read_ahead
        try:
            if ahead is not None:
                ahead.before(conn, [item.context for item in batch if item.ahead])
                # the webhooks of a batch arrived together, none waiting on another's
                # answer: any order is one they could have run in
                batch = sorted(batch, key=lambda item: not ahead.goes_first(item.context))
            for item in batch:
                if item.guard.abandoned:
                    continue  # its answer went back while it waited in the batch: it never runs
                if not item.kept and time.monotonic() > item.due - LAST_MOMENT * self.deadline_seconds:
                    # its deadline would pass during its work and give the whole batch up:
                    # it runs alone, and the apology (if it comes) is its own
                    item.alone = True
                    self._queue.put(item)
                    continue
                # as in the loop's batches: the webhook's commit() flushes into the batch's
                # transaction, and a rollback ends it for all
                db = Session(bind=conn, join_transaction_mode="rollback_only", expire_on_commit=False)
                item.guard.batched = True
                try:
                    value, after = item.context.run(item.work, db, item.guard)
                except Exception as exc:
                    if refused(exc):
                        raise Refused(item) from exc
                    raise
                finally:
                    item.guard.batched = False
                    _close(db)
                if conn.get_transaction() is not transaction or not transaction.is_active:
                    raise BatchClosed("a webhook ended the batch's transaction")
                done.append((item, value, after))
                if ahead is not None:
                    ahead.after_each(conn)
        finally:
            conn.info[_IN_BATCH] = False

    def _batch_failed(
        self,
        conn: Connection | None,
        batch: list[_Item[Any]],
        *,
        only: _Item[Any] | None = None,
        again: bool = False,
    ) -> None:
        """Nothing of the batch is stored: each webhook whose answer has not gone back, and
        each callback, runs again, alone (or `only` that one alone, the others in a batch
        again; or, `again`, all in a batch again, none read ahead). The batch is rolled back on the driver's
        connection (after a refused COMMIT the engine's idea of the transaction may be
        ended while the server's, with its locks, is still open), and the connection is
        closed: a new one costs little on this rare path."""
        if conn is not None:
            try:
                raw = conn.connection.dbapi_connection
                if raw is not None:
                    raw.rollback()
            except Exception:
                log.debug("rolling back a given-up batch failed", exc_info=True)
            try:
                conn.close()
            except Exception:
                log.debug("closing a failed batch's connection failed too", exc_info=True)
        for item in batch:
            # a callback runs again though its answer has gone; a voice step whose caller
            # has heard the apology does not (what was heard and what is stored agree)
            if not item.alone and item.guard.retry() and (item.kept or not item.answered):
                if again:
                    item.ahead = False
                    self._batches.put(item)
                else:
                    (self._queue if only is None or item is only else self._batches).put(item)

    # ------------------------------------------------------------ the phone line's threads

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item.guard.abandoned:
                continue  # its answer has already gone back: it never starts
            try:
                self._alone(item)
            except BaseException as exc:  # never let the thread die: the phone line has no other
                log.exception("the phone line's worker failed")
                item.fail(exc)

    def _alone(self, item: _Item[Any]) -> None:
        """One webhook, one transaction: its work commits itself."""
        try:
            with self.sessions() as db:
                value, after = item.context.run(item.work, db, item.guard)
        except BaseException as exc:
            if item.guard.tries_again(exc) and not self._stopped.is_set():
                self._again_later(item, exc)
                return
            item.fail(exc)
            return
        _after_commit(item.context, item.guard.deliver(), after)
        item.settle(value)

    def _again_later(self, item: _Item[Any], exc: BaseException) -> None:
        """A kept callback the database refused: in line again a moment later (the
        thread goes on with the others meanwhile), until its retry_until."""
        guard = item.guard
        guard.refusals += 1
        guard.retry()
        item.context.run(
            log.warning if guard.refusals == 1 else log.debug,
            "the database refused a callback (%s); it is tried again for up to %.0f s",
            type(exc).__name__,
            LATE_SECONDS,
        )
        timer = threading.Timer(REFUSED_RETRY_SECONDS, self._queue.put, (item,))
        timer.daemon = True
        timer.start()


def _after_commit(context: contextvars.Context, delivered: bool, after: Callable[[], None] | None) -> None:
    """What must follow the work's commit (its REST requests), unless the caller has heard
    the apology meanwhile (`delivered` false): stored after all, but at least no partner's
    phone rings for a call its caller was told had failed."""
    if not delivered:
        context.run(
            log.error, "a webhook's work was stored after its apology; its REST requests are not sent"
        )
        return
    if after is not None:
        try:
            context.run(after)
        except Exception:
            log.exception("work after a webhook's commit failed")


_IN_BATCH = "peerline_in_batch"


def _only_the_batch_commits(conn: Connection) -> None:
    """A webhook that rolled back its batch's transaction and then wrote again would commit
    a transaction of its own behind the runner's back: refused, and it hears the apology (a
    webhook's work is committed by the runner, never by itself). Each batch's connection
    says whether a webhook's work is running in it (the loop's one, each batch thread's)."""
    if conn.info.get(_IN_BATCH):
        raise BatchClosed("a webhook in a batch may not commit a transaction of its own")


def _close(db: Session) -> None:
    """Closed if it holds anything: a webhook whose statements ran on the batch's
    connection directly (app/db.statement_connection) leaves an empty session, and
    closing one (expunging nothing, new identity maps) cost more than those statements."""
    if db.in_transaction() or db.identity_map or db.new or db.deleted:
        db.close()


def _locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text
