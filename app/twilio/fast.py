"""The inbound call's fast path: a known caller in two statements, on the driver's cursor.

`POST /twilio/voice` from a participant's home phone is the request a surge is made of
(a reminder wave answered at once, Twilio's backlog after a fault). Through the ORM it
ran nine statements and spent most of its time in SQLAlchemy: building cache keys,
loading rows into the identity map, flushing. Here the same facts come from:

1. one read of the caller, their pair and their partner by the caller's blind index,
   whether the partner is on another call, how many of the partner's calls did not
   reach the caller since the pair last talked (the services' own statements, asked of
   that row), and whether this call already has a row (a repeated webhook);
2. one `INSERT ... ON CONFLICT DO NOTHING` of the call's row with its final values.

In a PostgreSQL batch both go for the whole batch at once (below, "a batch's callers,
read at once"): the reads before it runs, each with its row's id, and the rows with its
COMMIT.

The statements are the services' own SQLAlchemy Core statements (app/services/calls.py),
compiled once per dialect and run on the cursor of the webhook's connection, in its
transaction: the webhook's one transaction and its commit are unchanged. In a batch
(app/deadline.py) that is the batch's connection, already in the batch's transaction,
used directly: the session's own transaction around two statements cost more than they
did (a webhook that fails afterwards still ends the batch's transaction, see
app/twilio/webhooks.py).
`ivr.flow` decides and builds the TwiML with the SDK, exactly as on the general path,
and the effects are recorded by the same `calls.record` on a call row that is written
once, at the end. Anything unusual (an unknown or withheld caller, a repeated webhook)
is left to the general path, which is the reference: a test compares the two.

Pure, repeated work is memoised: a caller ID's normal form and region, and its blind
index (an HMAC). The memo lives in this process's memory only, like the request itself.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import phonenumbers
from sqlalchemy import BindParameter, Select, bindparam, case, func, insert, literal_column, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.visitors import replacement_traverse

import ivr.flow as flow
from app.crypto import PhoneVault
from app.db import as_engine_error, commit_held, drop_held, hold, statement_connection
from app.models import Call, Pair, Participant
from app.services import calls
from app.services.cursor import OnCursor
from app.services.outbound import Outbound, PlacePartnerLeg
from app.services.participants import stored_quiet_hours
from app.services.upsert import NewRow
from ivr.phone import is_withheld, try_normalise
from ivr.vocab import CallKind, Language, Outcome, ParticipantStatus

# ---------------------------------------------------------------- memoised pure work

MEMO_SIZE = 4096


@lru_cache(maxsize=MEMO_SIZE)
def normalised(raw: str, region: str) -> str | None:
    """`ivr.phone.try_normalise`, remembered: phonenumbers parses in tens of microseconds."""
    return try_normalise(raw, region)


@lru_cache(maxsize=MEMO_SIZE)
def region_of(e164: str) -> str | None:
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return str(region) if region and region != "ZZ" else None


class _Indexes:
    """Blind indexes by number, per vault (a rotated key is a new vault: a fresh memo)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple[int, str], tuple[PhoneVault, list[str]]] = OrderedDict()

    def __call__(self, vault: PhoneVault, e164: str) -> list[str]:
        key = (id(vault), e164)
        with self._lock:
            found = self._memo.get(key)
            if found is not None and found[0] is vault:
                self._memo.move_to_end(key)
                return found[1]
        indexes = vault.blind_indexes(e164)
        with self._lock:
            self._memo[key] = (vault, indexes)
            if len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return indexes


blind_indexes = _Indexes()


# ---------------------------------------------------------------- statements, compiled once

_me, _other, _pair = aliased(Participant), aliased(Participant), aliased(Pair)


def _about(expression: Any) -> Any:
    """One of the services' statements about a pair, asked of the row being read: its
    parameters for the partner, the caller and the pair become those columns, and each
    SELECT in it is correlated to them (two levels down, too)."""
    columns = {"person": _other.id, "partner": _other.id, "me": _me.id, "pair": _pair.id}
    seen: set[int] = set()

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter):
            return columns.get(element.key)
        if isinstance(element, Select) and id(element) not in seen:
            seen.add(id(element))
            inner = cast(Select[Any], replacement_traverse(element, _OPTIONS, replace))
            return inner.correlate(_me, _other, _pair)
        return None

    return replacement_traverse(expression, _OPTIONS, replace)


_OPTIONS: dict[str, Any] = {}


# the caller, their pair and their partner; whether the partner is on a call and how many
# of the partner's calls missed the caller since they last talked (the services' own
# statements, about this row); and whether this call has a row already: one round trip
_CALLER = (
    select(
        _me.id,
        _me.name,
        _me.timezone,
        _me.quiet_hours,
        _me.language,
        _me.status,
        _pair.id,
        _pair.ended_at.is_(None),
        _other.id,
        _other.name,
        _other.timezone,
        _other.quiet_hours,
        _other.status,
        _other.phone_ciphertext.is_not(None),
        select(Call.id).where(Call.twilio_call_sid == bindparam("sid")).scalar_subquery(),
        _about(calls.ON_A_CALL),
        _about(calls.MISSED_SINCE).scalar_subquery(),
    )
    .select_from(_me)
    .outerjoin(_pair, _pair.id == _me.active_pair_id)
    .outerjoin(
        _other,
        _other.id
        == case(
            (_pair.participant_a_id == _me.id, _pair.participant_b_id),
            else_=_pair.participant_a_id,
        ),
    )
    .where(_me.phone_index.in_([bindparam("index"), bindparam("previous")]))
    .limit(1)
)
# every column of the call's row but its id: written once, with its final values
_COLUMNS = [column.key for column in Call.__table__.columns if column.key != "id"]


# run on the driver's cursor (app/services/cursor.py), compiled once per dialect with the
# columns' own bind processing: what is written is exactly what the ORM would write
# (tests/test_fast_path.py compares every column)
_ASKING = ("sid", "index", "previous", "after", "exclude")
_READ_CALLER = OnCursor(_CALLER, *_ASKING)
_CALL_ROW = NewRow(Call.__table__, _COLUMNS, ["twilio_call_sid"])
# in a PostgreSQL batch: the same read, with an id for the call's row from its sequence
# (an id unused when the webhook takes the general path is a gap, as after any rollback),
# and the row written with it later; a row there already for the call fails the batch
_READ_AHEAD = OnCursor(_CALLER.add_columns(func.nextval(literal_column("'call_id_seq'"))), *_ASKING)
_HELD_CALL_ROW = OnCursor(
    insert(Call).values({column: bindparam(column) for column in ["id", *_COLUMNS]}), "id", *_COLUMNS
)


# ---------------------------------------------------------------- the inbound call


def language(code: str | None) -> Language | None:
    """A language code as stored or sent, if it names a supported language."""
    try:
        return Language(code) if code else None
    except ValueError:
        return None


@dataclasses.dataclass
class Known:
    """A known, active caller: the facts `ivr.flow.inbound` needs, and a call row to fill."""

    caller: flow.Caller
    call: Call


def _indexes_of(vault: PhoneVault, from_: str, region: str) -> list[str] | None:
    """The blind indexes a caller ID is looked up by; None when it cannot be a
    participant's own phone (withheld, or not a number)."""
    if is_withheld(from_):
        return None
    e164 = normalised(from_, region)
    return blind_indexes(vault, e164) if e164 is not None else None


def known_caller(
    db: Session,
    vault: PhoneVault,
    *,
    sid: str,
    from_: str,
    region: str,
    lang: Language | None,
    now: datetime,
) -> Known | None:
    """The facts for an inbound call from a participant's own phone, or None for the general path."""
    indexes = _indexes_of(vault, from_, region)
    if indexes is None:
        return None
    ahead = _Ahead.of(statement_connection(db))
    row = ahead.row(sid) if ahead is not None else _UNREAD
    call_id = None
    if row is _UNREAD:
        row = _READ_CALLER.first_as_stored(db, _asked(sid, indexes, now))
    elif row is not None:
        call_id = row[17]
    if ahead is not None and row is not None:
        ahead.reading(sid, row)
    if row is None or row[14] is not None or row[5] != ParticipantStatus.ACTIVE:
        return None  # unknown or withdrawn caller, or a repeated webhook: the general path
    (me_id, me_name, me_zone, me_quiet, me_lang, _, pair_id, pair_open) = row[:8]
    (other_id, other_name, other_zone, other_quiet, other_status, reachable) = row[8:14]
    on_call, missed = row[15:17]
    me = flow.Person(
        me_id,
        me_name,
        me_zone,
        stored_quiet_hours(me_quiet),
        language=lang or language(me_lang) or Language.EN,
    )
    if pair_id is None or not pair_open:
        caller = flow.Caller(me)
    elif other_id is None or other_status != ParticipantStatus.ACTIVE or not reachable:
        caller = flow.Caller(me, pair_id)
    else:
        partner = flow.Partner(
            other_id, other_name, other_zone, stored_quiet_hours(other_quiet), on_call=bool(on_call)
        )
        caller = flow.Caller(me, pair_id, partner, int(missed or 0))
    # the row's first values go straight into the new object's dict: it is never added to
    # a session (write_call writes it), and the constructor's eight instrumented sets cost
    # more than the statements
    call = _NEW_CALL()
    call.__dict__.update(
        id=call_id,
        twilio_call_sid=sid,
        kind=CallKind.PEER,
        started_at=now,
        outcome=Outcome.IN_PROGRESS,
        id_tries=0,
        caller_stepped_out=0,
        partner_stepped_out=0,
        caller_index=indexes[0],
    )
    return Known(caller, call)


_NEW_CALL = Call.__mapper__.class_manager.new_instance


def write_call(db: Session, call: Call, outbound: list[Outbound]) -> list[Outbound] | None:
    """Write the call's row once, with its final values; the REST requests learn its id.

    None when a row for the call appeared meanwhile (a concurrent repeat on PostgreSQL):
    then nothing was written and the general path answers. A row read ahead in a batch
    came with its id: its write is held back, to go with the batch's next statement or
    its COMMIT (app/db.hold), and a row there by then fails the batch.
    """
    # the row as set so far (an unset column is NULL): read from the instance's own dict,
    # not through 36 instrumented attribute reads
    state = call.__dict__
    values = {key: state.get(key) for key in _COLUMNS}
    conn = statement_connection(db)
    ahead = _Ahead.of(conn)
    call_id = state.get("id")
    if call_id is not None and ahead is not None:
        compiled = _HELD_CALL_ROW.compiled(conn.dialect)
        hold(conn, compiled.sql, compiled.parameters({**values, "id": call_id}))
    else:
        call_id = _CALL_ROW.made(db, values)
    if ahead is not None and call_id is not None:
        ahead.written(call.twilio_call_sid)
    if call_id is None:
        return None
    return [
        dataclasses.replace(request, call_id=call_id) if isinstance(request, PlacePartnerLeg) else request
        for request in outbound
    ]


# ---------------------------------------------------------------- a batch's callers, read at once
#
# In a surge the webhooks in a PostgreSQL batch (app/deadline.py) are mostly inbound calls
# from known callers, each needing its read of the caller before it can decide. Run in
# turn, each read is a round trip, and the batch thread must take the GIL back after each
# one while the event loop holds it. The reads are instead sent together before the batch
# runs (psycopg's pipeline mode: one round trip for all), and each webhook takes its row.
# A row read ahead is from before the batch's earlier webhooks ran, so it is used only
# while nothing they wrote can have changed it: not after a webhook that took the general
# path (it may have written anything), nor when an earlier webhook of the batch wrote a
# call of this caller, of their partner, or with this call's SID. Otherwise the webhook
# reads again, as it would have without the read ahead.
#
# A row read ahead comes with the id of the call's row (the sequence's next value), so
# its INSERT need not be waited for: it is held back (app/db.hold) and goes with the
# batch's COMMIT, or with the batch's next statement of any kind, which then sees it.
# It has no ON CONFLICT: a row for the call made elsewhere meanwhile fails the COMMIT,
# and the batch runs again alone (app/deadline.py), where the general path finds it.


def _asked(sid: str, indexes: Sequence[str], now: datetime) -> dict[str, Any]:
    return {
        "sid": sid,
        "index": indexes[0],
        "previous": indexes[-1],
        "after": now - calls.LIVE_AT_MOST,
        "exclude": -1,  # this call has no row yet
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Asked:
    """What an inbound call's read will ask, known before its webhook is put in line."""

    sid: str
    indexes: list[str]
    now: datetime


ASKED: contextvars.ContextVar[Asked | None] = contextvars.ContextVar("peerline_asked", default=None)


def ask_ahead(vault: PhoneVault, *, sid: str, from_: str, region: str, now: datetime) -> None:
    """In the event loop, as an inbound call's webhook is put in line: its read, for the
    batch to make with the others' (a caller ID that cannot be a participant's asks nothing)."""
    indexes = _indexes_of(vault, from_, region)
    if indexes is not None:
        ASKED.set(Asked(sid, indexes, now))


_UNREAD: Any = object()
_AHEAD = "peerline_read_ahead"


class _Ahead:
    """A batch's rows read ahead (on its connection's info), and what its webhooks wrote."""

    def __init__(self, rows: dict[str, Sequence[Any] | None]) -> None:
        self.rows = rows
        self.people: set[int] = set()  # whose calls the batch's webhooks wrote
        self.sids: set[str] = set()
        self.stale = False  # a webhook took the general path: any row may have changed
        self.current: tuple[str, set[int]] | None = None  # the webhook running, once read
        self.wrote = False

    @staticmethod
    def of(conn: Any) -> _Ahead | None:
        return cast(_Ahead | None, conn.info.get(_AHEAD))

    def row(self, sid: str) -> Any:
        row = self.rows.pop(sid, _UNREAD)
        if self.stale or row is _UNREAD:
            return _UNREAD
        if row is not None and (sid in self.sids or row[0] in self.people or row[8] in self.people):
            return _UNREAD  # an earlier webhook of the batch wrote a call it counts
        return row

    def reading(self, sid: str, row: Sequence[Any]) -> None:
        self.current = (sid, {person for person in (row[0], row[8]) if person is not None})

    def written(self, sid: str) -> None:
        if self.current is not None and self.current[0] == sid:
            self.wrote = True

    def done(self) -> None:
        """A webhook of the batch has run: its call is counted, or the rest read again."""
        if self.wrote and self.current is not None:
            self.sids.add(self.current[0])
            self.people |= self.current[1]
        else:
            self.stale = True
        self.current, self.wrote = None, False


class ReadAhead:
    """The batch runner's hooks (app/deadline.py, PostgreSQL's batches)."""

    def before(self, conn: Any, contexts: Sequence[contextvars.Context]) -> None:
        asked = [found for found in (context.get(ASKED) for context in contexts) if found is not None]
        if len(asked) < 2 or conn.dialect.name != "postgresql":
            return  # one read alone gains nothing from going ahead
        compiled = _READ_AHEAD.compiled(conn.dialect)
        raw = conn.connection.dbapi_connection
        cursors = []
        with as_engine_error(conn), raw.pipeline():
            for each in asked:
                cursor = raw.cursor()
                cursor.execute(compiled.sql, compiled.parameters(_asked(each.sid, each.indexes, each.now)))
                cursors.append((each.sid, cursor))
        conn.info[_AHEAD] = _Ahead({sid: cursor.fetchone() for sid, cursor in cursors})

    def goes_first(self, context: contextvars.Context) -> bool:
        # a callback early in a mixed batch would make every row read ahead stale
        return context.get(ASKED) is not None

    def after_each(self, conn: Any) -> None:
        ahead = _Ahead.of(conn)
        if ahead is not None:
            ahead.done()

    def commit(self, conn: Any) -> None:
        commit_held(conn)

    def after(self, conn: Any) -> None:
        if conn.invalidated:
            return  # its info goes with the driver's connection (and the real error stands)
        conn.info.pop(_AHEAD, None)
        drop_held(conn)


READ_AHEAD = ReadAhead()
