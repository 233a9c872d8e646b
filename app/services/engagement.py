"""Engagement as the trials measured it, for the whole programme, one pairing cohort or one pair.

Definitions (DESIGN.md, "Contract details the checks rely on: Engagement"):

- A *call* is an accepted call: the partner pressed 1, so `accepted_at` is set. Peer calls
  count, and so do reminder calls that the reminded participant turned into a bridge;
  staff outreach calls do not. A *contact* is an accepted call whose outcome is
  `contact` (talk time at least MIN_CONTACT_SECONDS, decided when the call ended).
  Talk time is the call's `duration_seconds`.
- Time is counted from the moment the pair was made: month m since pairing is days
  [30(m-1), 30m), week w is days [7(w-1), 7w). A call belongs to the week and month it
  started in. Calls before pairing or after the pair ended belong to no pair-week.
- A pair-week (or pair-month) is *finished* once it has wholly passed, before the pair
  ended and before now. A pair has *reached* month m once that month has begun.
- `months` lists every month some pair has reached; `pairs` is how many reached it and
  `calls_per_pair` the calls made in that month divided by them (so the month still
  under way reads "so far"; `pairs_finished` says how many have completed it).
- A participant is engaged once in at least one accepted call (`ENGAGED_WHEN=accepted`)
  or one contact (`ENGAGED_WHEN=contact`), in any pair of the cohort.
- Cohort `YYYY-MM`: the pairs made in that calendar month in PROGRAMME_TIMEZONE.

Where the work is done: the database aggregates calls into a *tally* (per pair: counts,
first contact, the weeks with a contact as a bit set; per cohort and month: a histogram
of talk seconds, from which the median is exact). Python then combines a tally with the
pairs' exposure, which depends on `now`. A programme's whole history is a million rows;
aggregating it takes seconds, so `SettledHistory` keeps the tally of calls and messages
from before a horizon six hours back (by then a call's record is final: Twilio ends any
call after four hours) and each request aggregates only the hours since and any row
added since. Small programmes are aggregated whole on every request.

Reminders are counted by their calls: a reminder call *placed* (Twilio took it), one
*answered* by a person (not an answering machine), one *bridged* (the participant pressed
1 and the partner was rung). A reminder call that became a conversation is also a call
of the pair, started by the reminded participant.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    Integer,
    and_,
    case,
    cast,
    create_engine,
    distinct,
    event,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.models import Call, CareTeamMessage, Pair, UTCDateTime
from app.services.errors import Invalid, found
from ivr.quiet_hours import zone
from ivr.vocab import CallKind, CallStatus, EndReason, Outcome

EngagedWhen = Literal["accepted", "contact"]

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONTH_MS = 30 * DAY_MS
# the pilot's measure: at least one contact a week in at least 2 of the first 6 weeks
PILOT_WEEKS = 6
PILOT_WEEKS_WITH_CONTACT = 2
# a pair is one-sided when one partner started at least 80 % of at least 4 calls
ONE_SIDED_MIN_CALLS = 4
ONE_SIDED_SHARE = 0.8
# The trials' line (Heisler et al. 2010): 2.4 calls a month at 15.6 minutes in month 1,
# 0.8 calls at 6.8 minutes by month 6; straight between, nothing reported after.
REFERENCE_FIRST = (1, 2.4, 15.6)
REFERENCE_LAST = (6, 0.8, 6.8)
# the week bit sets are summed in SQL as 62-bit words, which fit any 64-bit integer
WORD_WEEKS = 62


def reference(month: int) -> tuple[float, float] | None:
    """The trials' calls per pair and minutes per call in that month since pairing, or None."""
    m0, calls0, minutes0 = REFERENCE_FIRST
    m1, calls1, minutes1 = REFERENCE_LAST
    if not m0 <= month <= m1:
        return None
    t = (month - m0) / (m1 - m0)
    return calls0 + t * (calls1 - calls0), minutes0 + t * (minutes1 - minutes0)


# ---------------------------------------------------------------- cohorts


def cohort_of(moment: datetime, tz: str) -> str:
    """The pairing cohort of a pair made at `moment`: its month in the programme's zone."""
    return moment.astimezone(zone(tz)).strftime("%Y-%m")


def cohort_bounds(cohort: str, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants at which that month begins and the next begins, in the programme's zone."""
    try:
        first = datetime.strptime(cohort, "%Y-%m")
        after = (first + timedelta(days=31)).replace(day=1)
        local = zone(tz)
        return first.replace(tzinfo=local).astimezone(UTC), after.replace(tzinfo=local).astimezone(UTC)
    except (ValueError, OverflowError):  # not a month, or one no calendar arithmetic reaches (9999-12)
        raise Invalid("cohort: must be a month of pairing as YYYY-MM, such as 2026-03") from None


def cohort_label(db: Session, tz: str, which: ColumnElement[bool] | None = None) -> ColumnElement[str]:
    """SQL for a pair's cohort label, right for the pairs `which` picks (default: all).

    SQLite knows no time zones: the months' boundaries are worked out here, in the
    programme's zone, and the database compares the pair's start against them.
    """
    first, last = (
        db.connection()
        .execute(
            select(func.min(Pair.started_at), func.max(Pair.started_at)).where(
                *([] if which is None else [which])
            )
        )
        .one()
    )
    if first is None:
        return literal("")
    cohorts = _months_between(first, last, tz)
    if len(cohorts) == 1:
        return literal(cohorts[0][0])
    return case(
        *((Pair.started_at < start, label) for (label, _), (_, start) in itertools.pairwise(cohorts)),
        else_=cohorts[-1][0],
    )


def cohorts(db: Session, tz: str) -> list[str]:
    """Every pairing month from the programme's first pair to its latest, newest first."""
    first, last = db.connection().execute(select(func.min(Pair.started_at), func.max(Pair.started_at))).one()
    if first is None:
        return []
    return [label for label, _ in reversed(_months_between(first, last, tz))]


def _months_between(first: datetime, last: datetime, tz: str) -> list[tuple[str, datetime]]:
    """Each cohort from the one holding `first` to the one holding `last`, with its start."""
    out: list[tuple[str, datetime]] = []
    label = cohort_of(first, tz)
    end = cohort_of(last, tz)
    while True:
        start, after = cohort_bounds(label, tz)
        out.append((label, start))
        if label >= end:
            return out
        label = cohort_of(after, tz)


# ---------------------------------------------------------------- the tally: what SQL aggregates


@dataclass(frozen=True)
class PairTally:
    """One pair's calls, summed by the database. Sides: a is the lower participant id."""

    accepted: int = 0
    contacts: int = 0
    started_a: int = 0  # accepted calls started by side a
    started_b: int = 0
    first_accepted_ms: int | None = None  # from pairing to the first accepted call
    first_contact_ms: int | None = None
    contact_weeks: int = 0  # bit k set: a contact in week k + 1
    # reminder calls to each side: placed, answered by a person, turned into a bridge
    reminders_a: tuple[int, int, int] = (0, 0, 0)
    reminders_b: tuple[int, int, int] = (0, 0, 0)

    def plus(self, other: PairTally) -> PairTally:
        return PairTally(
            self.accepted + other.accepted,
            self.contacts + other.contacts,
            self.started_a + other.started_a,
            self.started_b + other.started_b,
            _least(self.first_accepted_ms, other.first_accepted_ms),
            _least(self.first_contact_ms, other.first_contact_ms),
            self.contact_weeks | other.contact_weeks,
            _add3(self.reminders_a, other.reminders_a),
            _add3(self.reminders_b, other.reminders_b),
        )


def _least(x: int | None, y: int | None) -> int | None:
    return y if x is None else x if y is None else min(x, y)


def _add3(x: tuple[int, int, int], y: tuple[int, int, int]) -> tuple[int, int, int]:
    return (x[0] + y[0], x[1] + y[1], x[2] + y[2])


# The cohort key under which every cohort's calls are summed too, so that the whole
# programme's month never has to be put together from its cohorts on a request.
ALL = "*"
# (cohort or ALL, month since pairing) -> talk seconds (None while unknown) -> (calls, contacts)
Histogram = dict[tuple[str, int], dict[int | None, tuple[int, int]]]


@dataclass(frozen=True)
class Tally:
    pairs: dict[int, PairTally] = field(default_factory=dict)
    hist: Histogram = field(default_factory=dict)
    messages: dict[int, int] = field(default_factory=dict)  # pair -> care-team messages while paired

    def merged(self, other: Tally) -> Tally:
        """A new tally of both; neither is changed (a cached tally is read by many threads).

        Only what `other` touches is copied: adding a few hours of calls to a programme's history
        copies the outer dictionaries and a few months' histograms, not the whole tally.
        """
        if not other.pairs and not other.hist and not other.messages:
            return self
        pairs = dict(self.pairs)
        for pid, extra in other.pairs.items():
            mine = pairs.get(pid)
            pairs[pid] = extra if mine is None else mine.plus(extra)
        hist = dict(self.hist)
        for key, extra_seconds in other.hist.items():
            seconds = dict(hist.get(key, {}))
            for value, (n, c) in extra_seconds.items():
                n0, c0 = seconds.get(value, (0, 0))
                seconds[value] = (n0 + n, c0 + c)
            hist[key] = seconds
        messages = dict(self.messages)
        for pid, n in other.messages.items():
            messages[pid] = messages.get(pid, 0) + n
        return Tally(pairs, hist, messages)


def elapsed_ms(dialect: str, later: Any, earlier: Any) -> ColumnElement[int]:
    """Whole milliseconds from `earlier` to `later`, computed by the database.

    Integer milliseconds, so the week and month of a call are integer divisions that SQL
    and Python agree on (julianday's float days would put a call exactly on a boundary
    on either side of it).
    """
    if dialect == "postgresql":
        return cast(func.round(func.extract("epoch", later - earlier) * 1000), BigInteger)
    return cast(func.round((func.julianday(later) - func.julianday(earlier)) * DAY_MS), Integer)


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count(case((condition, 1)))


PARTNER_KINDS = (CallKind.PEER, CallKind.REMINDER)
ACCEPTED = Call.accepted_at.is_not(None)
CONTACT = and_(ACCEPTED, Call.outcome == Outcome.CONTACT)
REMINDER_CALL = Call.kind == CallKind.REMINDER
# answered by a person: Twilio says answered, and machine detection did not hear a machine
REMINDER_ANSWERED = and_(
    REMINDER_CALL,
    or_(Call.answered_at.is_not(None), Call.status == CallStatus.COMPLETED),
    or_(Call.end_reason.is_(None), Call.end_reason != EndReason.ANSWERING_MACHINE),
)
# turned into a bridge: the reminded participant pressed 1 and the partner was rung
REMINDER_BRIDGED = and_(REMINDER_CALL, or_(Call.bridged_at.is_not(None), ACCEPTED))
SIDE_A = case(
    (Pair.participant_a_id < Pair.participant_b_id, Pair.participant_a_id), else_=Pair.participant_b_id
)
SIDE_B = case(
    (Pair.participant_a_id < Pair.participant_b_id, Pair.participant_b_id), else_=Pair.participant_a_id
)
IN_PAIRING = and_(
    Call.pair_id == Pair.id,
    Call.started_at >= Pair.started_at,
    or_(Pair.ended_at.is_(None), Call.started_at < Pair.ended_at),
    Call.kind.in_(PARTNER_KINDS),
)


@dataclass(frozen=True)
class Window:
    """Which rows to count: `where` conditions, and `pick` conditions that an index answers
    and that few rows meet (the last hours', or the newest ids). Picked rows are found
    first, by id; otherwise SQLite's planner would rather walk every pair's calls in index
    order. Conditions may name the pair too (Pair), which every row is joined to."""

    where: tuple[ColumnElement[bool], ...] = ()
    pick: tuple[ColumnElement[bool], ...] = ()

    def conditions(self, id_column: Any) -> list[ColumnElement[bool]]:
        if not self.pick:
            return list(self.where)
        return [*self.where, id_column.in_(select(id_column).where(*self.pick).scalar_subquery())]


EVERYTHING = Window()


def tally(
    db: Session, tz: str, calls: Window | None = EVERYTHING, messages: Window | None = EVERYTHING
) -> Tally:
    """Aggregate the calls and the care-team messages in these windows (None: none of them)."""
    pairs, hist = _call_tally(db, tz, calls) if calls is not None else ({}, {})
    counted = messages_by_pair(db, messages) if messages is not None else {}
    return Tally(pairs, hist, counted)


def _call_tally(db: Session, tz: str, window: Window) -> tuple[dict[int, PairTally], Histogram]:
    dialect = db.get_bind().dialect.name
    where = [IN_PAIRING, *window.conditions(Call.id)]
    ms = elapsed_ms(dialect, Call.started_at, Pair.started_at)
    by_a, by_b = Call.initiator_id == SIDE_A, Call.initiator_id == SIDE_B

    pairs: dict[int, PairTally] = {}
    rows = (
        db.connection()
        .execute(
            select(
                Call.pair_id,
                count_where(ACCEPTED),
                count_where(CONTACT),
                count_where(and_(ACCEPTED, by_a)),
                count_where(and_(ACCEPTED, by_b)),
                func.min(case((ACCEPTED, ms))),
                func.min(case((CONTACT, ms))),
                count_where(and_(REMINDER_CALL, by_a)),
                count_where(and_(REMINDER_ANSWERED, by_a)),
                count_where(and_(REMINDER_BRIDGED, by_a)),
                count_where(and_(REMINDER_CALL, by_b)),
                count_where(and_(REMINDER_ANSWERED, by_b)),
                count_where(and_(REMINDER_BRIDGED, by_b)),
            )
            .select_from(Call)
            .join(Pair, Pair.id == Call.pair_id)
            .where(*where)
            .group_by(Call.pair_id)
        )
        .all()
    )
    for r in rows:
        pairs[r[0]] = PairTally(
            accepted=r[1],
            contacts=r[2],
            started_a=r[3],
            started_b=r[4],
            first_accepted_ms=_int(r[5]),
            first_contact_ms=_int(r[6]),
            reminders_a=(r[7], r[8], r[9]),
            reminders_b=(r[10], r[11], r[12]),
        )
    if not pairs:
        return {}, {}

    # The weeks with a contact, as bit sets: one bit per week, summed over distinct powers
    # of two (an OR that both databases have), in words of WORD_WEEKS weeks.
    week = ms // WEEK_MS
    words = (
        db.connection()
        .execute(
            select(
                Call.pair_id,
                (week // WORD_WEEKS).label("word"),
                func.sum(distinct(literal(1, BigInteger).op("<<")(cast(week % WORD_WEEKS, Integer)))),
            )
            .select_from(Call)
            .join(Pair, Pair.id == Call.pair_id)
            .where(*where, CONTACT)
            .group_by(Call.pair_id, "word")
        )
        .all()
    )
    masks: Counter[int] = Counter()
    for pid, word, bits in words:
        masks[pid] |= int(bits) << (int(word) * WORD_WEEKS)
    for pid, mask in masks.items():
        t = pairs[pid]
        pairs[pid] = PairTally(
            t.accepted, t.contacts, t.started_a, t.started_b, t.first_accepted_ms,
            t.first_contact_ms, mask, t.reminders_a, t.reminders_b,
        )  # fmt: skip

    # Talk time by cohort and month since pairing, as a histogram of seconds: the mean and
    # the exact median come from it, and cohorts can be picked out of a cached tally.
    cohort = cohort_label(db, tz, Pair.id.in_(list(pairs)) if len(pairs) <= 500 else None)
    hist: Histogram = {}
    # grouped by the output columns' names: PostgreSQL would not see two copies of an
    # expression with bound constants as the same expression
    for label, month, seconds, n, c in (
        db.connection()
        .execute(
            select(
                cohort.label("cohort"),
                (ms // MONTH_MS + 1).label("month"),
                Call.duration_seconds.label("seconds"),
                func.count(),
                count_where(CONTACT),
            )
            .select_from(Call)
            .join(Pair, Pair.id == Call.pair_id)
            .where(*where, ACCEPTED)
            .group_by("cohort", "month", "seconds")
        )
        .all()
    ):
        for key in ((label, int(month)), (ALL, int(month))):
            mine = hist.setdefault(key, {})
            n0, c0 = mine.get(seconds, (0, 0))
            mine[seconds] = (n0 + n, c0 + c)
    return pairs, hist


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


# ---------------------------------------------------------------- settled history, kept per process

SETTLE = timedelta(hours=6)
CACHE_FROM_CALLS = 10_000


class SettledHistory:
    """The tally of calls and messages older than a horizon, kept between requests.

    It holds exactly the calls with `started_at < horizon` and `id <= last call id`, and
    the messages with `received_at < horizon` and `id <= last message id`. A request adds
    what is new since: rows with a higher id from before the horizon (history loaded after
    the fact; live calls start now, after it), and, when the horizon moves on (hourly), the
    rows it passes. Rows since the horizon, and any row added after the request looked,
    are aggregated fresh on every request. The horizon trails now by SETTLE: by then a
    call's record is final (Twilio ends any call after four hours), so a row changed later
    would not be seen; nothing in the service changes one. The pairs themselves (a few
    thousand rows, which change only when one is made or ended) are kept too, and read
    again whenever their count, newest id or ends change.
    Small programmes (fewer than `from_calls` calls) skip all this and are aggregated whole.
    """

    def __init__(self, tz: str, from_calls: int = CACHE_FROM_CALLS) -> None:
        self.tz = tz
        self.from_calls = from_calls
        self._lock = threading.Lock()
        self._tally: Tally | None = None
        self._horizon = datetime.min.replace(tzinfo=UTC)
        self._last_call = self._last_message = 0
        self._pairs: tuple[tuple[Any, ...], list[PairRow]] | None = None

    def spans(self, db: Session, now: datetime, cohort: str | None = None) -> list[PairSpan]:
        mark = tuple(
            db.connection()
            .execute(
                select(
                    func.count(Pair.id), func.max(Pair.id), func.count(Pair.ended_at), func.max(Pair.ended_at)
                )
            )
            .one()
        )
        kept = self._pairs
        if kept is None or kept[0] != mark:
            kept = self._pairs = (mark, pair_rows(db, self.tz))
        return spans_at(kept[1], now, cohort)

    def tally(self, db: Session, now: datetime) -> Tally:
        last_call, last_message = (
            db.connection()
            .execute(
                select(
                    select(func.max(Call.id)).scalar_subquery(),
                    select(func.max(CareTeamMessage.id)).scalar_subquery(),
                )
            )
            .one()
        )
        last_call, last_message = last_call or 0, last_message or 0
        if last_call < self.from_calls:
            return tally(db, self.tz)
        C, M = Call, CareTeamMessage
        # the horizon moves on the hour, so adding the rows it passes is rare and small
        horizon = max(self._horizon, (now - SETTLE).replace(minute=0, second=0, microsecond=0))
        with self._lock:
            was, calls_were, messages_were = self._horizon, self._last_call, self._last_message
            if self._tally is None or last_call < calls_were or last_message < messages_were:
                # first use, or a database that went back (restored): start over
                self._tally = tally(
                    db,
                    self.tz,
                    Window((C.started_at < horizon, C.id <= last_call)),
                    Window((M.received_at < horizon, M.id <= last_message)),
                )
            else:
                settled = self._tally
                if last_call > calls_were or last_message > messages_were:
                    settled = settled.merged(
                        tally(
                            db,
                            self.tz,
                            Window((C.started_at < was,), (C.id > calls_were, C.id <= last_call))
                            if last_call > calls_were
                            else None,
                            Window((M.received_at < was,), (M.id > messages_were, M.id <= last_message))
                            if last_message > messages_were
                            else None,
                        )
                    )
                if horizon > was:
                    settled = settled.merged(
                        tally(
                            db,
                            self.tz,
                            Window((C.id <= last_call,), (C.started_at >= was, C.started_at < horizon)),
                            Window((M.id <= last_message,), (M.received_at >= was, M.received_at < horizon)),
                        )
                    )
                self._tally = settled
            self._horizon, self._last_call, self._last_message = horizon, last_call, last_message
            settled = self._tally
        # two disjoint windows rather than one OR, which SQLite cannot use an index for;
        # the second holds rows committed since this request read the last ids
        recent = tally(
            db, self.tz, Window(pick=(C.started_at >= horizon,)), Window(pick=(M.received_at >= horizon,))
        )
        late = tally(
            db,
            self.tz,
            Window((C.started_at < horizon,), (C.id > last_call,)),
            Window((M.received_at < horizon,), (M.id > last_message,)),
        )
        return settled.merged(recent).merged(late)


_HISTORIES: weakref.WeakKeyDictionary[Engine, dict[str, SettledHistory]] = weakref.WeakKeyDictionary()
_HISTORIES_LOCK = threading.Lock()


def history_for(db: Session, tz: str) -> SettledHistory:
    """The settled history of the programme `db` reads, one per engine and zone."""
    engine = db.get_bind()
    assert isinstance(engine, Engine)
    with _HISTORIES_LOCK:
        by_zone = _HISTORIES.setdefault(engine, {})
        return by_zone.setdefault(tz, SettledHistory(tz))


# ---------------------------------------------------------------- reading without SQLite's write lock

_READERS: dict[str, sessionmaker[Session]] = {}
_READERS_LOCK = threading.Lock()


def _sqlite_reader(url: str) -> sessionmaker[Session]:
    with _READERS_LOCK:
        maker = _READERS.get(url)
        if maker is None:
            engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA query_only = ON")
                cursor.execute("PRAGMA busy_timeout = 5000")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                # a deferred BEGIN: one consistent snapshot (WAL), never the writer's lock
                conn.exec_driver_sql("BEGIN")

            maker = _READERS[url] = sessionmaker(engine)
        return maker


@contextmanager
def reading(db: Session) -> Iterator[Session]:
    """A session for long reads that never holds up the phone line.

    On SQLite every transaction of the service takes the write lock up front (app/db.py),
    and the webhooks wait at most 1.5 s for it. Reading a programme's history can take
    longer, so on SQLite the request's own transaction, which has read only who is asking,
    is ended, and the figures are read in a snapshot of their own. PostgreSQL readers
    never block writers: there the request's session is used as it is.
    """
    bind = db.get_bind()
    assert isinstance(bind, Engine)
    url = bind.url
    if bind.dialect.name != "sqlite" or url.database in (None, "", ":memory:"):
        yield db
        return
    if db.new or db.dirty or db.deleted:
        raise RuntimeError("reading() must come before this request writes anything")
    db.rollback()
    with _sqlite_reader(url.render_as_string(hide_password=False))() as snapshot:
        yield snapshot


# ---------------------------------------------------------------- pairs and messages, read fresh


class PairSpan(NamedTuple):
    """A pair, its sides (a = the lower participant id), cohort and time paired so far."""

    id: int
    a: int
    b: int
    exposure_ms: int  # from pairing to its end, or to now
    cohort: str

    @property
    def finished_weeks(self) -> int:
        return self.exposure_ms // WEEK_MS

    @property
    def months_reached(self) -> int:
        return -(-self.exposure_ms // MONTH_MS)  # ceiling: a month that has begun

    @property
    def finished_months(self) -> int:
        return self.exposure_ms // MONTH_MS


# pairs' times are read as whole milliseconds since this moment, so that no datetime is
# parsed per pair and exposure is one subtraction
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# id, side a, side b, started and ended (ms since EPOCH), cohort
PairRow = tuple[int, int, int, int, int | None, str]


def pair_rows(db: Session, tz: str, *where: ColumnElement[bool]) -> list[PairRow]:
    dialect = db.get_bind().dialect.name
    epoch = literal(EPOCH, UTCDateTime())
    ended = case((Pair.ended_at.is_not(None), elapsed_ms(dialect, Pair.ended_at, epoch)))
    cohort = cohort_label(db, tz, and_(*where) if where else None)
    rows = (
        db.connection()
        .execute(
            select(Pair.id, SIDE_A, SIDE_B, elapsed_ms(dialect, Pair.started_at, epoch), ended, cohort)
            .where(*where)
            .order_by(Pair.id)
        )
        .all()
    )
    return [
        (pid, a, b, int(start), None if end is None else int(end), label)
        for pid, a, b, start, end, label in rows
    ]


def spans_at(rows: Iterable[PairRow], now: datetime, cohort: str | None = None) -> list[PairSpan]:
    """The pairs' exposure at `now`: from pairing to the end of the pair, or to now."""
    now_ms = (now - EPOCH) // timedelta(milliseconds=1)
    make = tuple.__new__  # a NamedTuple's own __new__ is Python code; ten thousand a request add up
    return [
        make(PairSpan, (pid, a, b, max(0, (now_ms if end is None or end > now_ms else end) - start), label))
        for pid, a, b, start, end, label in rows
        if cohort is None or label == cohort
    ]


def pair_spans(db: Session, now: datetime, tz: str, *where: ColumnElement[bool]) -> list[PairSpan]:
    """The pairs `where` picks, with their exposure at `now`."""
    return spans_at(pair_rows(db, tz, *where), now)


def messages_by_pair(db: Session, window: Window = EVERYTHING) -> dict[int, int]:
    """Care-team messages each pair's partners left while paired."""
    counts: Counter[int] = Counter()
    for side in (Pair.participant_a_id, Pair.participant_b_id):
        counts.update(
            dict(
                db.connection()
                .execute(
                    select(Pair.id, func.count(CareTeamMessage.id))
                    .join(CareTeamMessage, CareTeamMessage.participant_id == side)
                    .where(
                        CareTeamMessage.received_at >= Pair.started_at,
                        or_(Pair.ended_at.is_(None), CareTeamMessage.received_at < Pair.ended_at),
                        *window.conditions(CareTeamMessage.id),
                    )
                    .group_by(Pair.id)
                )
                .all()
            )
        )
    return dict(counts)


# ---------------------------------------------------------------- the figures


@dataclass(frozen=True)
class MonthFigures:
    month: int
    pairs: int
    pairs_finished: int
    calls: int
    contacts: int
    calls_per_pair: float
    contacts_per_pair: float
    calls_per_participant: float
    contacts_per_participant: float
    mean_talk_minutes: float | None
    median_talk_minutes: float | None
    reference_calls_per_pair: float | None
    reference_talk_minutes: float | None


@dataclass(frozen=True)
class FirstContact:
    pairs_with_contact: int
    share_of_pairs: float | None
    median_days: float | None
    days: float | None  # one pair's own figure; None for a programme


@dataclass(frozen=True)
class SideFigures:
    participant_id: int
    side: Literal["a", "b"]
    calls_started: int
    share_of_calls: float | None
    reminders_placed: int
    reminders_answered: int
    reminders_bridged: int
    reminder_answer_rate: float | None


@dataclass(frozen=True)
class InitiatorBalance:
    pairs_assessed: int  # pairs with at least ONE_SIDED_MIN_CALLS calls
    one_sided_pairs: int
    one_sided_share: float | None
    one_sided: bool | None  # one pair's own flag; None for a programme


@dataclass(frozen=True)
class Reminders:
    placed: int
    answered: int
    bridged: int
    answer_rate: float | None
    participants_reminded: int
    median_participant_answer_rate: float | None


@dataclass(frozen=True)
class DoseTertile:
    tertile: int
    pairs: int
    min_calls_per_month: float
    max_calls_per_month: float
    mean_calls_per_month: float


@dataclass(frozen=True)
class Engagement:
    as_of: datetime
    cohort: str | None
    pair_id: int | None
    engaged_when: EngagedWhen
    pairs: int
    participants: int
    months: list[MonthFigures]
    finished_pair_weeks: int
    pair_weeks_with_contact: int
    weekly_contact_share: float | None
    pilot_pairs: int
    pilot_measure_share: float | None
    engaged_participants: int
    ever_engaged_share: float | None
    never_engaged_share: float | None
    first_contact: FirstContact
    initiator_balance: InitiatorBalance
    reminders: Reminders
    messages: int
    participant_weeks: float
    messages_per_100_participant_weeks: float | None
    calls_per_month: float | None  # accepted calls per pair-month, over pairs paired a month or more
    dose_tertiles: list[DoseTertile]
    sides: list[SideFigures]  # one pair's two participants; empty for a programme


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _weighted_median(values: list[tuple[int, int]], total: int) -> float | None:
    """The median of a multiset given as sorted (value, how many times) with `total` in all
    (statistics.median's rule: the mean of the middle two when the count is even)."""
    if not total:
        return None
    lower, upper = (total - 1) // 2, total // 2
    seen, low = 0, None
    for value, n in values:
        seen += n
        if low is None and seen > lower:
            low = value
        if seen > upper:
            return (low + value) / 2  # type: ignore[operator]
    raise AssertionError("unreachable")


def _months(spans: list[PairSpan], tally: Tally, cohort: str) -> list[MonthFigures]:
    reached: Counter[int] = Counter(s.months_reached for s in spans)
    finished: Counter[int] = Counter(s.finished_months for s in spans)
    last = max(reached, default=0)
    out: list[MonthFigures] = []
    pairs_in = sum(reached.values())
    pairs_done = sum(finished.values())
    for month in range(1, last + 1):
        pairs_in -= reached.get(month - 1, 0)  # pairs that reached month m: months_reached >= m
        pairs_done -= finished.get(month - 1, 0)
        calls = contacts = count = talk = 0
        timed: list[tuple[int, int]] = []
        for seconds, (n, c) in tally.hist.get((cohort, month), {}).items():
            calls += n
            contacts += c
            if seconds is not None:  # an accepted call still under way has no talk time yet
                count += n
                talk += seconds * n
                timed.append((seconds, n))
        timed.sort()
        median = _weighted_median(timed, count)
        ref = reference(month)
        out.append(
            MonthFigures(
                month=month,
                pairs=pairs_in,
                pairs_finished=pairs_done,
                calls=calls,
                contacts=contacts,
                calls_per_pair=calls / pairs_in,
                contacts_per_pair=contacts / pairs_in,
                calls_per_participant=calls / (2 * pairs_in),
                contacts_per_participant=contacts / (2 * pairs_in),
                mean_talk_minutes=talk / count / 60 if count else None,
                median_talk_minutes=median / 60 if median is not None else None,
                reference_calls_per_pair=ref[0] if ref else None,
                reference_talk_minutes=ref[1] if ref else None,
            )
        )
    return out


def _tertiles(rates: list[float]) -> list[DoseTertile]:
    """Pairs split into thirds by calls per month, lowest first, as evenly as the count allows."""
    rates = sorted(rates)
    n = len(rates)
    out = []
    for t in range(3):
        part = rates[t * n // 3 : (t + 1) * n // 3]
        if part:
            out.append(DoseTertile(t + 1, len(part), part[0], part[-1], sum(part) / len(part)))
    return out


def figures(
    spans: list[PairSpan],
    tally: Tally,
    *,
    now: datetime,
    engaged_when: EngagedWhen,
    cohort: str | None = None,
    pair_id: int | None = None,
) -> Engagement:
    """The figures for these pairs, from a tally that holds (at least) their calls.

    One pass over the pairs: a programme has ten thousand of them, on every request.
    """
    by_contact = engaged_when == "contact"
    pilot_bits = (1 << PILOT_WEEKS) - 1
    finished_weeks = with_contact = pilot_pairs = pilot_met = 0
    assessed = one_sided = placed = answered = bridged = message_count = exposure_ms = 0
    people = {s.a for s in spans} | {s.b for s in spans}
    engaged: set[int] = set()
    first_days: list[float] = []
    dosed: list[float] = []
    per_person: dict[int, list[int]] = {}
    tallied = tally.pairs.get
    left = tally.messages.get
    for s in spans:
        exposure = s.exposure_ms
        exposure_ms += exposure
        weeks = exposure // WEEK_MS
        finished_weeks += weeks
        pilot = weeks >= PILOT_WEEKS
        pilot_pairs += pilot
        message_count += left(s.id, 0)
        t = tallied(s.id)
        if t is None:
            if exposure >= MONTH_MS:
                dosed.append(0.0)
            continue
        if exposure >= MONTH_MS:
            dosed.append(t.accepted * MONTH_MS / exposure)
        if t.contact_weeks:
            with_contact += (t.contact_weeks & ((1 << weeks) - 1)).bit_count()
            pilot_met += pilot and (t.contact_weeks & pilot_bits).bit_count() >= PILOT_WEEKS_WITH_CONTACT
        if t.contacts if by_contact else t.accepted:
            engaged.add(s.a)
            engaged.add(s.b)
        if t.first_contact_ms is not None:
            first_days.append(t.first_contact_ms / DAY_MS)
        started = t.started_a + t.started_b
        if started >= ONE_SIDED_MIN_CALLS:
            assessed += 1
            one_sided += max(t.started_a, t.started_b) >= ONE_SIDED_SHARE * started
        for person, (p, a, b) in ((s.a, t.reminders_a), (s.b, t.reminders_b)):
            if p:
                placed, answered, bridged = placed + p, answered + a, bridged + b
                mine = per_person.setdefault(person, [0, 0])
                mine[0] += p
                mine[1] += a

    first_days.sort()
    first = FirstContact(
        pairs_with_contact=len(first_days),
        share_of_pairs=_share(len(first_days), len(spans)),
        median_days=statistics.median(first_days) if first_days else None,
        days=first_days[0] if pair_id is not None and first_days else None,
    )
    balance = InitiatorBalance(
        assessed, one_sided, _share(one_sided, assessed), bool(one_sided) if pair_id and assessed else None
    )
    person_rates = [a / p for p, a in per_person.values()]
    reminders = Reminders(
        placed,
        answered,
        bridged,
        _share(answered, placed),
        len(person_rates),
        statistics.median(person_rates) if person_rates else None,
    )
    participant_weeks = 2 * exposure_ms / WEEK_MS

    sides: list[SideFigures] = []
    if pair_id is not None and spans:
        s, t = spans[0], tally.pairs.get(spans[0].id, PairTally())
        started = t.started_a + t.started_b
        for side, person, calls, (p, a, b) in (
            ("a", s.a, t.started_a, t.reminders_a),
            ("b", s.b, t.started_b, t.reminders_b),
        ):
            sides.append(SideFigures(person, side, calls, _share(calls, started), p, a, b, _share(a, p)))  # type: ignore[arg-type]

    return Engagement(
        as_of=now,
        cohort=cohort,
        pair_id=pair_id,
        engaged_when=engaged_when,
        pairs=len(spans),
        participants=len(people),
        months=_months(spans, tally, ALL if cohort is None else cohort),
        finished_pair_weeks=finished_weeks,
        pair_weeks_with_contact=with_contact,
        weekly_contact_share=_share(with_contact, finished_weeks),
        pilot_pairs=pilot_pairs,
        pilot_measure_share=_share(pilot_met, pilot_pairs),
        engaged_participants=len(engaged),
        ever_engaged_share=_share(len(engaged), len(people)),
        never_engaged_share=_share(len(people) - len(engaged), len(people)),
        first_contact=first,
        initiator_balance=balance,
        reminders=reminders,
        messages=message_count,
        participant_weeks=participant_weeks,
        messages_per_100_participant_weeks=100 * message_count / participant_weeks
        if participant_weeks
        else None,
        calls_per_month=sum(dosed) / len(dosed) if dosed else None,
        dose_tertiles=_tertiles(dosed) if pair_id is None else [],
        sides=sides,
    )


# ---------------------------------------------------------------- entry points


def programme(
    db: Session,
    *,
    now: datetime,
    tz: str,
    engaged_when: EngagedWhen,
    cohort: str | None = None,
    history: SettledHistory | None = None,
) -> Engagement:
    """The programme's figures, or one pairing cohort's (`YYYY-MM` in the programme's zone)."""
    if cohort is not None:
        start, after = cohort_bounds(cohort, tz)  # refuses a malformed cohort
    if history is not None:
        spans = history.spans(db, now, cohort)
        counted = history.tally(db, now) if spans else Tally()
    else:
        where = [] if cohort is None else [Pair.started_at >= start, Pair.started_at < after]
        spans = pair_spans(db, now, tz, *where)
        counted = tally(db, tz) if spans else Tally()
    return figures(spans, counted, now=now, engaged_when=engaged_when, cohort=cohort)


def for_pair(db: Session, pair_id: int, *, now: datetime, tz: str, engaged_when: EngagedWhen) -> Engagement:
    """One pair's figures, read fresh: its calls are a few hundred rows on an index."""
    found(db.get(Pair, pair_id), f"pair {pair_id}")
    spans = pair_spans(db, now, tz, Pair.id == pair_id)
    counted = tally(db, tz, Window((Call.pair_id == pair_id,)), Window((Pair.id == pair_id,)))
    return figures(
        spans, counted, now=now, engaged_when=engaged_when, cohort=spans[0].cohort, pair_id=pair_id
    )
