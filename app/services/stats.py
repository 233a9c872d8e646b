"""Programme figures for evaluation: contacts per week, minutes, who calls, weeks with a contact."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, cast, func, literal, select
from sqlalchemy.orm import Session

from app.models import AttentionFlag, Call, CareTeamMessage, Pair, UTCDateTime

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Week:
    week_start: datetime
    contacts: int
    minutes: float
    week_end: datetime | None = None  # calendar weeks: the next Monday 00:00, local


def calendar_weeks(now: datetime, tz: ZoneInfo, weeks: int) -> list[datetime]:
    """The bounds of the last `weeks` calendar weeks in the programme's zone, oldest first:
    each Monday 00:00 local, then the Monday after the current week (weeks + 1 moments).

    Weeks a reader can name ("the week of Nov 16") instead of windows that end at the moment
    of the request and shift with every call. Bounds are wall-clock Mondays, so a week that
    crosses a DST change is 167 or 169 hours long, as on the programme's own calendar.
    """
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    return [
        datetime.combine(monday - timedelta(weeks=weeks - 1 - i), time(0), tzinfo=tz)
        for i in range(weeks + 1)
    ]


def week_bucket(column: Any, bounds: list[datetime]) -> Any:
    """Which of the weeks between `bounds` the column's time falls in (0 = oldest), computed by
    the database; NULL outside them. Comparisons with the bounds, not arithmetic on seconds,
    so weeks of 167 or 169 hours count right on both databases."""
    return case(
        *[(column < literal(end, UTCDateTime()), i) for i, end in enumerate(bounds[1:])],
        else_=None,
    )


@dataclass(frozen=True)
class PairStats:
    pair_id: int
    weeks: int
    weeks_with_contact: int
    share_of_weeks_with_contact: float
    contacts: int
    minutes: float
    contacts_per_week: float
    initiator_share: dict[str, float]
    by_week: list[Week]


@dataclass(frozen=True)
class ProgrammeStats:
    active_pairs: int
    pairs_with_contact_this_period: int
    share_of_pairs_with_contact_this_period: float
    contacts: int
    minutes: float
    by_week: list[Week]
    attention: int
    unhandled_messages: int


def week_index(db: Session, column: Any, start: datetime) -> Any:
    """Whole weeks from `start` to the column's time, computed by the database."""
    if db.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", column - literal(start, UTCDateTime()))
        return func.floor(seconds / WEEK.total_seconds())
    days = func.julianday(column) - func.julianday(literal(start, UTCDateTime()))
    return cast(days / 7, Integer)


def pair_stats(db: Session, pair: Pair, now: datetime) -> PairStats:
    """Aggregated by the database: a talkative pair's thousands of calls never leave it."""
    end = pair.ended_at or now
    weeks = max(1, math.ceil((end - pair.started_at) / WEEK))
    contact = (Call.pair_id == pair.id, Call.outcome == "contact", Call.accepted_at.is_not(None))
    week = week_index(db, Call.accepted_at, pair.started_at).label("week")
    per_week = db.execute(
        select(week, func.count(Call.id), func.coalesce(func.sum(Call.duration_seconds), 0))
        .where(*contact)
        .group_by(week)
    ).all()
    buckets = {int(w): (n, secs) for w, n, secs in per_week if w is not None}
    by_week = [
        Week(pair.started_at + i * WEEK, buckets.get(i, (0, 0))[0], round(buckets.get(i, (0, 0))[1] / 60, 1))
        for i in range(weeks)
    ]
    with_contact = sum(1 for i in buckets if 0 <= i < weeks)
    who = Counter(
        dict(
            db.execute(
                select(Call.initiator_id, func.count(Call.id)).where(*contact).group_by(Call.initiator_id)
            ).all()
        )
    )
    total = sum(who.values())
    seconds_total = sum(secs for _, _, secs in per_week)
    share = {
        str(pid): round(who.get(pid, 0) / total, 3) if total else 0.0
        for pid in (pair.participant_a_id, pair.participant_b_id)
    }
    return PairStats(
        pair_id=pair.id,
        weeks=weeks,
        weeks_with_contact=with_contact,
        share_of_weeks_with_contact=round(with_contact / weeks, 3),
        contacts=total,
        minutes=round(seconds_total / 60, 1),
        contacts_per_week=round(total / weeks, 2),
        initiator_share=share,
        by_week=by_week[-12:],
    )


def programme_stats(
    db: Session, now: datetime, period: timedelta, tz: ZoneInfo, weeks: int = 12
) -> ProgrammeStats:
    """The programme now; `by_week` holds calendar weeks (Monday 00:00 in `tz`), the last
    one being the current week so far."""
    active = db.scalar(select(func.count(Pair.id)).where(Pair.ended_at.is_(None))) or 0
    talking = (
        db.scalar(
            select(func.count(Pair.id)).where(Pair.ended_at.is_(None), Pair.last_contact_at >= now - period)
        )
        or 0
    )
    bounds = calendar_weeks(now, tz, weeks)
    week = week_bucket(Call.accepted_at, bounds).label("week")
    per_week = db.execute(
        select(week, func.count(Call.id), func.coalesce(func.sum(Call.duration_seconds), 0))
        .where(
            Call.outcome == "contact",
            Call.accepted_at >= literal(bounds[0], UTCDateTime()),
            Call.accepted_at < literal(bounds[-1], UTCDateTime()),
        )
        .group_by(week)
    ).all()
    buckets = [[0, 0] for _ in range(weeks)]
    for w, n, secs in per_week:
        if w is not None and 0 <= int(w) < weeks:
            buckets[int(w)][0] += n
            buckets[int(w)][1] += int(secs or 0)
    by_week = [
        Week(bounds[i], n, round(secs / 60, 1), week_end=bounds[i + 1]) for i, (n, secs) in enumerate(buckets)
    ]
    return ProgrammeStats(
        active_pairs=active,
        pairs_with_contact_this_period=talking,
        share_of_pairs_with_contact_this_period=round(talking / active, 3) if active else 0.0,
        contacts=sum(w.contacts for w in by_week),
        minutes=round(sum(secs for _, secs in buckets) / 60, 1),
        by_week=by_week,
        attention=db.scalar(select(func.count(AttentionFlag.id)).where(AttentionFlag.cleared_at.is_(None)))
        or 0,
        unhandled_messages=db.scalar(
            select(func.count(CareTeamMessage.id)).where(CareTeamMessage.handled_at.is_(None))
        )
        or 0,
    )
