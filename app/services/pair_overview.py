"""Pairs as staff look over them: who is in each, how much they talked, their last twelve weeks.

What the console's lists and pair pages show beside the pairs themselves; every figure is
aggregated by the database, so a long list never loads its calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from app.models import AttentionFlag, Call, Pair, Participant, Reminder, UTCDateTime
from app.services import queries, stats

STRIP_WEEKS = 12


@dataclass(frozen=True)
class PairRow:
    pair: Pair
    a: Participant | None
    b: Participant | None
    contacts: int  # contacts within the current contact period
    minutes: float  # their talk time
    strip: list[int]  # contacts in each of the last twelve calendar weeks, oldest first
    seconds: int = 0  # talk time this period, for "2 min 48 s"
    period_start: datetime | None = None  # the period "this period" counts: [start, end]
    period_end: datetime | None = None
    # whole days since the last contact (since pairing when they never talked)
    days_quiet: int = 0
    # a full contact period without a contact: the pair reminders are for (DESIGN "Reminders")
    quiet: bool = False
    # on the attention list now: quiet two periods in a row, nobody has cleared it yet
    flagged: bool = False
    # the Monday (00:00 in the programme's zone) each strip cell starts; the last is this week
    strip_weeks: list[datetime] = field(default_factory=list)


@dataclass(frozen=True)
class ThisPeriod:
    """One measure, one name: contacts (accepted calls with enough talk) accepted within the
    contact period that ends now, and their talk time. The console's "contacts this period"
    and the API's `contacts_this_period` both come from here."""

    contacts: int
    seconds: int


def contacts_this_period(
    db: Session, pair_ids: Sequence[int], now: datetime, period: timedelta
) -> dict[int, ThisPeriod]:
    if not pair_ids:
        return {}
    rows = db.execute(
        select(Call.pair_id, func.count(Call.id), func.coalesce(func.sum(Call.duration_seconds), 0))
        .where(
            Call.pair_id.in_(pair_ids),
            Call.outcome == "contact",
            Call.accepted_at >= literal(now - period, UTCDateTime()),
        )
        .group_by(Call.pair_id)
    ).all()
    return {pid: ThisPeriod(int(n), int(secs or 0)) for pid, n, secs in rows if pid is not None}


def flagged_pairs(db: Session, pair_ids: Sequence[int]) -> set[int]:
    """Which of these pairs have an attention item nobody has cleared yet."""
    if not pair_ids:
        return set()
    return set(
        db.scalars(
            select(AttentionFlag.pair_id).where(
                AttentionFlag.pair_id.in_(pair_ids), AttentionFlag.cleared_at.is_(None)
            )
        )
    )


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


def pair_rows(
    db: Session, pairs: list[Pair], now: datetime, period: timedelta, tz: ZoneInfo
) -> list[PairRow]:
    """Each pair with its partners, this period's contacts and talk time, whether it is quiet
    or flagged, and its strip of the last twelve calendar weeks in the programme's zone."""
    ids = [p.id for p in pairs]
    people = _partners(db, pairs)
    this_period = contacts_this_period(db, ids, now, period)
    flagged = flagged_pairs(db, ids)
    bounds = stats.calendar_weeks(now, tz, STRIP_WEEKS)
    strips: dict[int, list[int]] = {i: [0] * STRIP_WEEKS for i in ids}
    if ids:
        week = stats.week_bucket(Call.accepted_at, bounds).label("week")
        for pid, w, n in db.execute(
            select(Call.pair_id, week, func.count(Call.id))
            .where(
                Call.pair_id.in_(ids),
                Call.outcome == "contact",
                Call.accepted_at >= literal(bounds[0], UTCDateTime()),
                Call.accepted_at < literal(bounds[-1], UTCDateTime()),
            )
            .group_by(Call.pair_id, week)
        ).all():
            if pid is not None and w is not None and 0 <= int(w) < STRIP_WEEKS:
                strips[pid][int(w)] += n
    none = ThisPeriod(0, 0)
    rows = []
    for p in pairs:
        got = this_period.get(p.id, none)
        silent = now - (p.last_contact_at or p.started_at)
        rows.append(
            PairRow(
                p,
                people.get(p.participant_a_id),
                people.get(p.participant_b_id),
                got.contacts,
                round(got.seconds / 60, 1),
                strips[p.id],
                seconds=got.seconds,
                period_start=now - period,
                period_end=now,
                days_quiet=max(silent.days, 0),
                quiet=p.ended_at is None and silent >= period,
                flagged=p.id in flagged,
                strip_weeks=bounds[:-1],
            )
        )
    return rows


def strip_weeks(now: datetime, tz: ZoneInfo) -> list[datetime]:
    """The Monday each strip cell starts (00:00 in the programme's zone), oldest first; the
    last is the current week, so far. A list with no pairs still labels its strip."""
    return stats.calendar_weeks(now, tz, STRIP_WEEKS)[:-1]


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
