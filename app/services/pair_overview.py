"""Pairs as staff look over them: who is in each, how much they talked, their last twelve weeks.

What the console's lists and pair pages show beside the pairs themselves; every figure is
aggregated by the database, so a long list never loads its calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Call, Pair, Participant, Reminder
from app.services import queries, stats

STRIP_WEEKS = 12


@dataclass(frozen=True)
class PairRow:
    pair: Pair
    a: Participant | None
    b: Participant | None
    contacts: int  # contacts within the current contact period
    minutes: float  # their talk time
    strip: list[int]  # contacts in each of the last twelve weeks, oldest first
    seconds: int = 0  # talk time this period, for "2 min 48 s"
    period_start: datetime | None = None  # the period "this period" counts: [start, end]
    period_end: datetime | None = None
    # whole days since the last contact (since pairing when they never talked)
    days_quiet: int = 0


def _partners(db: Session, pairs: Iterable[Pair]) -> dict[int, Participant]:
    return queries.participants_by_id(
        db, [i for p in pairs for i in (p.participant_a_id, p.participant_b_id)]
    )


def names_for_pairs(db: Session, pair_ids: Iterable[int]) -> dict[int, str]:
    """Each pair's partners as "Ana & Bea"; a partner whose row is gone shows as "#id"."""
    pairs = list(queries.pairs_by_id(db, pair_ids).values())
    people = _partners(db, pairs)

    def name(i: int) -> str:
        return people[i].name if i in people else f"#{i}"

    return {p.id: f"{name(p.participant_a_id)} & {name(p.participant_b_id)}" for p in pairs}


def pair_rows(db: Session, pairs: list[Pair], now: datetime, period: timedelta) -> list[PairRow]:
    """Each pair with its partners, this period's contacts and minutes, and its weekly strip."""
    ids = [p.id for p in pairs]
    people = _partners(db, pairs)
    this_period: dict[int, tuple[int, int]] = {}
    strips: dict[int, list[int]] = {i: [0] * STRIP_WEEKS for i in ids}
    if ids:
        for pid, n, secs in db.execute(
            select(Call.pair_id, func.count(Call.id), func.coalesce(func.sum(Call.duration_seconds), 0))
            .where(Call.pair_id.in_(ids), Call.outcome == "contact", Call.accepted_at >= now - period)
            .group_by(Call.pair_id)
        ).all():
            if pid is not None:
                this_period[pid] = (n, int(secs or 0))
        first = now - STRIP_WEEKS * stats.WEEK
        week = stats.week_index(db, Call.accepted_at, first).label("week")
        for pid, w, n in db.execute(
            select(Call.pair_id, week, func.count(Call.id))
            .where(Call.pair_id.in_(ids), Call.outcome == "contact", Call.accepted_at >= first)
            .group_by(Call.pair_id, week)
        ).all():
            if pid is not None and w is not None and 0 <= int(w) <= STRIP_WEEKS:
                # the last week ends now, and includes now
                strips[pid][min(int(w), STRIP_WEEKS - 1)] += n
    return [
        PairRow(
            p,
            people.get(p.participant_a_id),
            people.get(p.participant_b_id),
            this_period.get(p.id, (0, 0))[0],
            round(this_period.get(p.id, (0, 0))[1] / 60, 1),
            strips[p.id],
            seconds=int(this_period.get(p.id, (0, 0))[1]),
            period_start=now - period,
            period_end=now,
            days_quiet=max((now - (p.last_contact_at or p.started_at)).days, 0),
        )
        for p in pairs
    ]


def reminders_of_pair(db: Session, pair_id: int, limit: int = 20) -> list[Reminder]:
    """The pair's latest reminders, newest first: staff check here whether one is stuck."""
    return list(
        db.scalars(
            select(Reminder).where(Reminder.pair_id == pair_id).order_by(Reminder.id.desc()).limit(limit)
        )
    )


def unpaired_participants(db: Session) -> list[Participant]:
    """Everyone who could be paired now (active, in no pair), by name."""
    return list(
        db.scalars(
            select(Participant)
            .where(Participant.status == "active", Participant.active_pair_id.is_(None))
            .order_by(Participant.name)
        )
    )
