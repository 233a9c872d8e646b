"""Reading the programme's records, a page at a time (keyset: newest first, stable under inserts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from app.models import (
    AttentionFlag,
    AuditEvent,
    Call,
    CareTeamMessage,
    Pair,
    Participant,
    StaffUser,
    UTCDateTime,
)

R = TypeVar("R")


@dataclass(frozen=True)
class Found(Sequence[R]):
    rows: list[R]
    next_key: tuple[Any, ...] | None

    def __getitem__(self, i: int) -> R:  # type: ignore[override]
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)


def keyset(
    db: Session, stmt: Select[R], order: Sequence[Any], after: tuple[Any, ...] | None, limit: int
) -> Found[R]:
    if after is not None:
        stmt = (
            stmt.where(tuple_(*order) < tuple_(*after)) if len(order) > 1 else stmt.where(order[0] < after[0])
        )
    rows = list(db.scalars(stmt.order_by(*(c.desc() for c in order)).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = tuple(getattr(rows[-1], c.key) for c in order) if more and rows else None
    return Found(rows, next_key)


def participants(
    db: Session, *, status: str | None, search: str | None, after: tuple[Any, ...] | None, limit: int
) -> Found[Participant]:
    stmt = select(Participant)
    if status:
        stmt = stmt.where(Participant.status == status)
    if search:
        stmt = stmt.where(Participant.name.ilike(f"%{search}%"))
    return keyset(db, stmt, [Participant.id], after, limit)


def quiet_since() -> Any:
    """The moment a pair's quiet clock started: its last contact, or its pairing when it has none."""
    return func.coalesce(Pair.last_contact_at, Pair.started_at, type_=UTCDateTime())


def pairs(
    db: Session,
    *,
    active: bool | None,
    participant_id: int | None,
    name: str | None = None,
    quiet_before: datetime | None = None,
    quietest_first: bool = False,
    after: tuple[Any, ...] | None,
    limit: int,
) -> Found[Pair]:
    """Pairs, newest first; `name` keeps those with a partner whose name contains it;
    `quiet_before` those with no contact since that moment (nor pairing).

    `quietest_first` orders by how long the pair has gone without a contact, longest first;
    the keyset is then (quiet since, id), ascending, and `after` is that pair of values."""
    stmt = select(Pair)
    if active is True:
        stmt = stmt.where(Pair.ended_at.is_(None))
    elif active is False:
        stmt = stmt.where(Pair.ended_at.is_not(None))
    if participant_id is not None:
        stmt = stmt.where(
            or_(Pair.participant_a_id == participant_id, Pair.participant_b_id == participant_id)
        )
    if name:
        matching = select(Participant.id).where(Participant.name.ilike(f"%{name}%"))
        stmt = stmt.where(or_(Pair.participant_a_id.in_(matching), Pair.participant_b_id.in_(matching)))
    if quiet_before is not None:
        stmt = stmt.where(quiet_since() <= literal(quiet_before, UTCDateTime()))
    if not quietest_first:
        return keyset(db, stmt, [Pair.id], after, limit)
    if after is not None:
        stmt = stmt.where(tuple_(quiet_since(), Pair.id) > tuple_(literal(after[0], UTCDateTime()), after[1]))
    rows = list(db.scalars(stmt.order_by(quiet_since().asc(), Pair.id.asc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    return Found(rows, (last.last_contact_at or last.started_at, last.id) if last is not None else None)


def calls_this_period(
    db: Session, pair_ids: Sequence[int], now: datetime, period: timedelta
) -> dict[int, int]:
    if not pair_ids:
        return {}
    rows = db.execute(
        select(Call.pair_id, func.count(Call.id))
        .where(Call.pair_id.in_(pair_ids), Call.started_at >= now - period)
        .group_by(Call.pair_id)
    ).all()
    return {pid: n for pid, n in rows if pid is not None}


def calls(
    db: Session,
    *,
    pair_id: int | None = None,
    participant_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> Found[Call]:
    stmt = select(Call)
    if pair_id is not None:
        stmt = stmt.where(Call.pair_id == pair_id)
    if participant_id is not None:
        stmt = stmt.where(or_(Call.initiator_id == participant_id, Call.callee_id == participant_id))
    if since is not None:
        stmt = stmt.where(Call.started_at >= since)
    if until is not None:
        stmt = stmt.where(Call.started_at < until)
    if outcome is not None:
        stmt = stmt.where(Call.outcome == outcome)
    return keyset(db, stmt, [Call.started_at, Call.id], after, limit)


def messages(
    db: Session,
    *,
    handled: bool | None,
    participant_id: int | None,
    after: tuple[Any, ...] | None,
    limit: int,
) -> Found[CareTeamMessage]:
    stmt = select(CareTeamMessage)
    if handled is True:
        stmt = stmt.where(CareTeamMessage.handled_at.is_not(None))
    elif handled is False:
        stmt = stmt.where(CareTeamMessage.handled_at.is_(None))
    if participant_id is not None:
        stmt = stmt.where(CareTeamMessage.participant_id == participant_id)
    return keyset(db, stmt, [CareTeamMessage.id], after, limit)


def attention(
    db: Session, *, open_only: bool, pair_id: int | None, after: tuple[Any, ...] | None, limit: int
) -> Found[AttentionFlag]:
    stmt = select(AttentionFlag)
    if open_only:
        stmt = stmt.where(AttentionFlag.cleared_at.is_(None))
    if pair_id is not None:
        stmt = stmt.where(AttentionFlag.pair_id == pair_id)
    return keyset(db, stmt, [AttentionFlag.id], after, limit)


def audit_events(
    db: Session, *, actor: str | None, action: str | None, after: tuple[Any, ...] | None, limit: int
) -> Found[AuditEvent]:
    stmt = select(AuditEvent)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return keyset(db, stmt, [AuditEvent.id], after, limit)


def users(db: Session, *, after: tuple[Any, ...] | None, limit: int) -> Found[StaffUser]:
    return keyset(db, select(StaffUser), [StaffUser.id], after, limit)


# ---------------------------------------------------------------- whole lists and look-ups by id


def pairs_by_id(db: Session, ids: Iterable[int]) -> dict[int, Pair]:
    """The pairs these ids name, in one query (a page of flags or calls names many)."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {p.id: p for p in db.scalars(select(Pair).where(Pair.id.in_(wanted)))}


def participants_by_id(db: Session, ids: Iterable[int]) -> dict[int, Participant]:
    """The participants these ids name, in one query."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {p.id: p for p in db.scalars(select(Participant).where(Participant.id.in_(wanted)))}


def all_participants(db: Session) -> list[Participant]:
    """Every participant, oldest first: the operator's roster at the command line."""
    return list(db.scalars(select(Participant).order_by(Participant.id)))


def all_pairs(db: Session, *, active_only: bool = False) -> list[Pair]:
    """Every pair (or every active one), oldest first."""
    stmt = select(Pair).order_by(Pair.id)
    if active_only:
        stmt = stmt.where(Pair.ended_at.is_(None))
    return list(db.scalars(stmt))


def all_users(db: Session) -> list[StaffUser]:
    """Every staff account, by email: a programme has tens of staff, not thousands."""
    return list(db.scalars(select(StaffUser).order_by(StaffUser.email)))
