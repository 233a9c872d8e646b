"""Prometheus metrics: what the service did, counted in this process, and what the database holds.

Two kinds:

- counters and histograms this process updates as it works (webhooks, apologies, signature
  failures, Twilio requests, sign-in failures, reminder sweeps). The rest of the code calls
  the small functions below, never prometheus_client directly;
- figures read from the database at scrape time (calls by kind and outcome, contacts,
  reminders by state, ...) and the connection pools' use, collected per app.

Labels are closed vocabularies only: route templates and step names, outcomes, kinds,
states. Never a number, a name, a SID or a raw path, so no label can leak who called, and
no label can grow without bound.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.pool import NullPool

from app.logs import current_request
from app.models import AttentionFlag, Call, CareTeamMessage, Pair, Participant, Reminder

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Everything this process counts; each app's registry reads it together with its own
# database and pool collectors.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files: where the platform tells

# Twilio waits 15 s; the phone line's own deadline is 2.2 s: buckets around both.
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0)
TWILIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)

WEBHOOK_REQUESTS = Counter(
    "peerline_webhook_requests",
    "Requests from Twilio, by step (route template or step name) and outcome "
    "(ok, apology, rejected, client_error, error)",
    ["step", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "peerline_webhook_duration_seconds",
    "Time to answer a request from Twilio, by step and outcome",
    ["step", "outcome"],
    buckets=WEBHOOK_BUCKETS,
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "peerline_http_requests",
    "Every HTTP request, by route template, method and status class",
    ["route", "method", "status"],
    registry=REGISTRY,
)
APOLOGIES = Counter(
    "peerline_apologies_served",
    "Callers who heard the spoken apology instead of the call flow, by reason "
    "(error, deadline, fallback, too_large)",
    ["reason"],
    registry=REGISTRY,
)
DEADLINE_MISSED = Counter(
    "peerline_webhook_deadline_missed",
    "Webhooks answered at the deadline before their work was done "
    "(a voice step's work is abandoned, a callback's kept)",
    registry=REGISTRY,
)
SIGNATURE_FAILURES = Counter(
    "peerline_signature_failures",
    "Requests to /twilio/* refused for a missing or wrong X-Twilio-Signature",
    registry=REGISTRY,
)
TWILIO_SECONDS = Histogram(
    "peerline_twilio_request_duration_seconds",
    "Time of requests to Twilio's REST API, by operation and outcome",
    ["operation", "outcome"],
    buckets=TWILIO_BUCKETS,
    registry=REGISTRY,
)
TWILIO_ERRORS = Counter(
    "peerline_twilio_errors",
    "Requests to Twilio's REST API that did not succeed, by operation and outcome",
    ["operation", "outcome"],
    registry=REGISTRY,
)
SIGN_IN_FAILURES = Counter(
    "peerline_sign_in_failures",
    "Refused staff sign-ins, by reason (bad_credentials, locked) and channel (api, console)",
    ["reason", "channel"],
    registry=REGISTRY,
)
REMINDERS = Counter(
    "peerline_reminders",
    "What this process's reminder sweeps did, by result "
    "(scheduled, flagged, placed, deferred, cancelled, failed, unknown, rate_limited)",
    ["result"],
    registry=REGISTRY,
)
SWEEP_LAST = Gauge(
    "peerline_reminder_sweep_last_finished_timestamp_seconds",
    "When this process last finished a reminder sweep (Unix time)",
    registry=REGISTRY,
)
SWEEP_SECONDS = Gauge(
    "peerline_reminder_sweep_duration_seconds",
    "How long this process's last reminder sweep took",
    registry=REGISTRY,
)
SWEEP_FAILURES = Counter(
    "peerline_reminder_sweep_failures",
    "Reminder sweeps that failed with an error (the next one tries again)",
    registry=REGISTRY,
)

SUCCESSFUL_TWILIO_OUTCOMES = {
    "placed",
    "fetched_recording",
    "fetched_call",
    "call_unknown",
    "done",
    "ok",
    "updated",
}
REMINDER_RESULTS = (
    "scheduled",
    "flagged",
    "placed",
    "deferred",
    "cancelled",
    "failed",
    "unknown",
    "rate_limited",
)


# ------------------------------------------------------------------ what the code calls


def apology_served(reason: str) -> None:
    """A caller heard the apology. `reason`: error, deadline, fallback or too_large."""
    APOLOGIES.labels(reason=reason).inc()
    state = current_request()
    if state is not None:
        state.apology = reason


def deadline_missed() -> None:
    DEADLINE_MISSED.inc()


def signature_rejected() -> None:
    SIGNATURE_FAILURES.inc()


def twilio_request(operation: str, seconds: float, outcome: str) -> None:
    TWILIO_SECONDS.labels(operation=operation, outcome=outcome).observe(seconds)
    if outcome not in SUCCESSFUL_TWILIO_OUTCOMES:
        TWILIO_ERRORS.labels(operation=operation, outcome=outcome).inc()


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _outcome_of(result: object) -> str:
    """`Placed` -> placed, `RateLimited` -> rate_limited: the result types are the vocabulary."""
    return _CAMEL.sub("_", type(result).__name__).lower()


def timed_twilio(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function that talks to Twilio's REST API and returns a result type
    (Placed, Rejected, ...): its time and outcome are recorded. One line where it is defined."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            try:
                result = fn(*args, **kwargs)
            except Exception:
                twilio_request(operation, time.monotonic() - started, "exception")
                raise
            twilio_request(operation, time.monotonic() - started, _outcome_of(result))
            return result

        return timed

    return decorate


def sign_in_failed(*, locked: bool, channel: str) -> None:
    SIGN_IN_FAILURES.labels(
        reason="locked" if locked else "bad_credentials", channel="console" if channel == "console" else "api"
    ).inc()


class SweepReportLike(Protocol):
    scheduled: int
    flagged: int
    placed: int
    deferred: int
    cancelled: int
    failed: int
    unknown: int
    rate_limited: int


def sweep_finished(report: SweepReportLike, seconds: float) -> None:
    for result in REMINDER_RESULTS:
        count = int(getattr(report, result, 0) or 0)
        if count:
            REMINDERS.labels(result=result).inc(count)
    SWEEP_SECONDS.set(seconds)
    SWEEP_LAST.set(time.time())


def sweep_failed() -> None:
    SWEEP_FAILURES.inc()


def webhook_step(route: str, path_params: dict[str, Any], known_steps: set[str]) -> str:
    """The label for a webhook: its route template, with a step Twilio was sent to filled in
    when it is one the service writes (a bounded set), never the raw path."""
    step = path_params.get("step")
    if "{step}" in route and isinstance(step, str) and step in known_steps:
        return route.replace("{step}", step)
    return route


def request_finished(
    route: str, method: str, status: int, seconds: float, *, webhook_step: str | None
) -> None:
    _child(HTTP_REQUESTS, route, method, f"{status // 100}xx").inc()
    if webhook_step is None:
        return
    state = current_request()
    if state is not None and state.apology is not None:
        outcome = "apology"
    elif status == 403:
        outcome = "rejected"
    elif status >= 500:
        outcome = "error"
    elif status >= 400:
        outcome = "client_error"
    else:
        outcome = "ok"
    _child(WEBHOOK_REQUESTS, webhook_step, outcome).inc()
    _child(WEBHOOK_SECONDS, webhook_step, outcome).observe(seconds)


_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Counter | Histogram, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: every request looks up the same few children.
    The labels are templates and closed vocabularies, so the memo stays small."""
    key = (metric, *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


# ------------------------------------------------------------------ read at scrape time


class _Forward(Collector):
    """This process's metrics, inside an app's own registry."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


class PoolCollector(Collector):
    """How many connections each engine's pool has lent out, holds idle, and has beyond its size."""

    def __init__(self, engines: dict[str, Engine]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Any]:
        used = GaugeMetricFamily(
            "peerline_db_pool_checked_out", "Database connections in use, by pool", labels=["pool"]
        )
        idle = GaugeMetricFamily(
            "peerline_db_pool_idle", "Database connections open and idle in the pool", labels=["pool"]
        )
        size = GaugeMetricFamily("peerline_db_pool_size", "The pool's configured size", labels=["pool"])
        overflow = GaugeMetricFamily(
            "peerline_db_pool_overflow",
            "Connections open beyond the pool's size (negative: room)",
            labels=["pool"],
        )
        for name, engine in self.engines.items():
            pool: Any = engine.pool
            for family, method in (
                (used, "checkedout"),
                (idle, "checkedin"),
                (size, "size"),
                (overflow, "overflow"),
            ):
                reader = getattr(pool, method, None)
                if callable(reader):
                    family.add_metric([name], float(reader()))
        yield from (used, idle, size, overflow)


@dataclass(frozen=True)
class DatabaseFigures:
    calls: list[tuple[str, str, int]]
    pairs_active: int
    participants: list[tuple[str, int]]
    reminders: list[tuple[str, int]]
    messages_unhandled: int
    attention_open: int


# a scrape waits at most this long for the database, then reports it as not answering
DATABASE_SECONDS = 1.5
# Prometheus scrapes every 15-60 s, often from two servers: a figure this fresh is reused
CACHE_SECONDS = 10.0


def _read_engine(url: str) -> Engine:
    """An engine of its own for the scrape: one connection at a time, short timeouts.

    Not the phone line's pool, and on SQLite not the app's BEGIN IMMEDIATE engine: a plain
    read under WAL takes no write lock, so a scrape can never make a caller wait.
    """
    if url.startswith("sqlite"):
        return create_engine(
            url, poolclass=NullPool, connect_args={"timeout": 0.5, "check_same_thread": False}
        )
    return create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.5,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 1,
            "options": "-c statement_timeout=1000 -c lock_timeout=500 -c default_transaction_read_only=on",
        },
    )


class DatabaseCollector(Collector):
    """Figures from the database, bounded by vocabularies (kinds, outcomes, states)."""

    def __init__(self, url: str, *, timeout: float = DATABASE_SECONDS, cache_seconds: float = CACHE_SECONDS):
        self.engine = _read_engine(url)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        # one thread: a database that hangs holds it, and later scrapes time out instead of
        # piling up threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-db")
        self._lock = threading.Lock()
        self._cached: tuple[float, DatabaseFigures] | None = None

    def _read(self) -> DatabaseFigures:
        with self.engine.connect() as conn:
            calls = [
                (str(kind), str(outcome), int(n))
                for kind, outcome, n in conn.execute(
                    select(Call.kind, Call.outcome, func.count()).group_by(Call.kind, Call.outcome)
                )
            ]
            pairs = conn.execute(
                select(func.count()).select_from(Pair).where(Pair.ended_at.is_(None))
            ).scalar()
            people = [
                (str(status), int(n))
                for status, n in conn.execute(
                    select(Participant.status, func.count()).group_by(Participant.status)
                )
            ]
            reminders = [
                (str(state), int(n))
                for state, n in conn.execute(select(Reminder.state, func.count()).group_by(Reminder.state))
            ]
            unhandled = conn.execute(
                select(func.count()).select_from(CareTeamMessage).where(CareTeamMessage.handled_at.is_(None))
            ).scalar()
            attention = conn.execute(
                select(func.count()).select_from(AttentionFlag).where(AttentionFlag.cleared_at.is_(None))
            ).scalar()
            conn.rollback()
        return DatabaseFigures(
            calls, int(pairs or 0), people, reminders, int(unhandled or 0), int(attention or 0)
        )

    def figures(self) -> DatabaseFigures | None:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
        try:
            found = self._pool.submit(self._read).result(timeout=self.timeout)
        except FutureTimeout:
            log.warning("metrics: the database did not answer within %.1f s", self.timeout)
            return None
        except Exception as exc:
            log.warning("metrics: could not read the database (%s)", type(exc).__name__)
            return None
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def collect(self) -> Iterator[Any]:
        found = self.figures()
        up = GaugeMetricFamily("peerline_metrics_database_up", "1 when the scrape could read the database")
        up.add_metric([], 1.0 if found is not None else 0.0)
        yield up
        if found is None:
            return
        calls = GaugeMetricFamily(
            "peerline_calls",
            "Calls recorded in the database, by kind and outcome",
            labels=["kind", "outcome"],
        )
        contacts = GaugeMetricFamily(
            "peerline_contacts",
            "Calls that were contacts (accepted, and long enough), by kind",
            labels=["kind"],
        )
        contact_counts: dict[str, int] = {}
        for kind, outcome, n in found.calls:
            calls.add_metric([kind, outcome], n)
            if outcome == "contact":
                contact_counts[kind] = contact_counts.get(kind, 0) + n
        for kind, n in contact_counts.items():
            contacts.add_metric([kind], n)
        pairs = GaugeMetricFamily("peerline_pairs_active", "Pairs not ended")
        pairs.add_metric([], found.pairs_active)
        people = GaugeMetricFamily("peerline_participants", "Participants, by status", labels=["status"])
        for status, n in found.participants:
            people.add_metric([status], n)
        reminders = GaugeMetricFamily(
            "peerline_reminders_by_state", "Reminders in the database, by state", labels=["state"]
        )
        for state, n in found.reminders:
            reminders.add_metric([state], n)
        unhandled = GaugeMetricFamily("peerline_messages_unhandled", "Care-team messages not yet handled")
        unhandled.add_metric([], found.messages_unhandled)
        attention = GaugeMetricFamily("peerline_attention_open", "Pairs on the attention list, not cleared")
        attention.add_metric([], found.attention_open)
        yield from (calls, contacts, pairs, people, reminders, unhandled, attention)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


class AppMetrics:
    """One app's registry: this process's metrics, its database's figures, its pools."""

    def __init__(self, database_url: str, engines: dict[str, Engine]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # scrapes run here, apart from the readiness probe's threads and the phone line's
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        self.database = DatabaseCollector(database_url)
        self.registry.register(_Forward())
        self.registry.register(PoolCollector(engines))
        self.registry.register(self.database)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.database.close()


def serve_port(metrics: AppMetrics, host: str, port: int) -> Callable[[], None]:
    """METRICS_PORT: the same figures, open (no token), on a port of their own; returns a stop."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
