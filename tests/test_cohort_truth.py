"""Ground truth = measures: every engagement figure, computed here from the simulator's truth
files alone, equals what app/services/engagement.py computes from the database, for the
programme and for each pair, and the research export's pair-weeks equal the truth's too.

The expected figures are worked out the plain way (a loop over the intended calls), so
they are a second reading of the definitions, not a copy of the SQL.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.models import Pair
from app.services import engagement, research
from app.simulator import cohort
from tests.conftest import suite_settings

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; the weeks cross the change to summer time
PAIRS, WEEKS = 12, 10
DAY, WEEK, MONTH = timedelta(days=1), timedelta(days=7), timedelta(days=30)


@dataclass(frozen=True)
class Truth:
    calls: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    until: datetime
    db_ids: dict[int, int]  # truth's pair number -> the pair's database id

    def calls_of(self, pair: int) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["pair"] == pair]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(params=[1, 7, 2026], ids=lambda seed: f"seed{seed}")
def simulated(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[tuple[Truth, Any]]:
    """A cohort simulated into the test database, its truth files read back, and a session."""
    settings = suite_settings(database_url, support_phone_number=None)
    truth_file = tmp_path / "truth.jsonl"
    cohort.simulate(settings, pairs=PAIRS, weeks=WEEKS, seed=request.param, start=START, truth=truth_file)
    pairs = cohort.read_truth_pairs(truth_file)
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as db:
            ids = list(db.scalars(select(Pair.id).order_by(Pair.id)))
            truth = Truth(
                calls=cohort.read_truth(truth_file),
                pairs=pairs,
                until=_when(pairs[0]["until"]),
                db_ids={n: pid for n, pid in enumerate(ids, start=1)},
            )
            yield truth, db
    finally:
        engine.dispose()


# ---------------------------------------------------------------- the figures, from the truth


def _exposure(pair: dict[str, Any], until: datetime) -> timedelta:
    ended = _when(pair["ended_at"]) if pair["ended_at"] else until
    return min(ended, until) - _when(pair["paired_at"])


def _since_pairing(call: dict[str, Any], pair: dict[str, Any]) -> timedelta:
    return _when(call["at"]) - _when(pair["paired_at"])


def expected(truth: Truth, only: int | None = None, engaged_when: str = "accepted") -> dict[str, Any]:
    """Every figure of an Engagement, for the programme or one pair (`only`), from the truth."""
    pairs = [p for p in truth.pairs if only is None or p["pair"] == only]
    by_number = {p["pair"]: p for p in pairs}
    calls = [c for c in truth.calls if c["pair"] in by_number]
    accepted = [c for c in calls if c["accepted"]]
    contacts = [c for c in calls if c["is_contact"]]
    reminders = [c for c in calls if c["kind"] == "reminder"]
    exposure = {n: _exposure(p, truth.until) for n, p in by_number.items()}

    months = []
    last_month = max((-(-e // MONTH) for e in exposure.values()), default=0)
    for m in range(1, last_month + 1):
        reached = sum(1 for e in exposure.values() if e > (m - 1) * MONTH)
        finished = sum(1 for e in exposure.values() if e >= m * MONTH)
        talk = [c["talk_seconds"] for c in accepted if c["month"] == m]
        n_contacts = sum(1 for c in contacts if c["month"] == m)
        months.append(
            {
                "month": m,
                "pairs": reached,
                "pairs_finished": finished,
                "calls": len(talk),
                "contacts": n_contacts,
                "calls_per_pair": len(talk) / reached,
                "contacts_per_pair": n_contacts / reached,
                "calls_per_participant": len(talk) / (2 * reached),
                "contacts_per_participant": n_contacts / (2 * reached),
                "mean_talk_minutes": statistics.mean(talk) / 60 if talk else None,
                "median_talk_minutes": statistics.median(talk) / 60 if talk else None,
            }
        )

    finished_weeks = {n: e // WEEK for n, e in exposure.items()}
    contact_weeks = {
        n: {_since_pairing(c, by_number[n]) // WEEK for c in contacts if c["pair"] == n} for n in by_number
    }
    with_contact = sum(len([w for w in contact_weeks[n] if w < finished_weeks[n]]) for n in by_number)
    pilot = [n for n in by_number if finished_weeks[n] >= 6]
    pilot_met = [n for n in pilot if len([w for w in contact_weeks[n] if w < 6]) >= 2]

    firsts = sorted(
        min(_since_pairing(c, by_number[n]) for c in contacts if c["pair"] == n) / DAY
        for n in by_number
        if any(c["pair"] == n for c in contacts)
    )
    engaging = accepted if engaged_when == "accepted" else contacts
    engaged_pairs = {c["pair"] for c in engaging}
    people = 2 * len(pairs)

    started = {n: {"a": 0, "b": 0} for n in by_number}
    for c in accepted:
        started[c["pair"]][c["initiator_side"]] += 1
    assessed = [n for n in by_number if sum(started[n].values()) >= engagement.ONE_SIDED_MIN_CALLS]
    one_sided = [n for n in assessed if max(started[n].values()) >= 0.8 * sum(started[n].values())]

    per_person: dict[tuple[int, str], list[int]] = {}
    for c in reminders:
        mine = per_person.setdefault((c["pair"], c["initiator_side"]), [0, 0, 0])
        mine[0] += 1
        mine[1] += c["answered"]
        mine[2] += c["bridged"]
    rates = [answered / placed for placed, answered, _ in per_person.values()]
    messages = sum(1 for c in calls if c["message"])
    participant_weeks = 2 * sum(exposure.values(), timedelta()) / WEEK
    dosed = [
        sum(1 for c in accepted if c["pair"] == n) * (MONTH / e) for n, e in exposure.items() if e >= MONTH
    ]

    figures: dict[str, Any] = {
        "pairs": len(pairs),
        "participants": people,
        "months": months,
        "finished_pair_weeks": sum(finished_weeks.values()),
        "pair_weeks_with_contact": with_contact,
        "weekly_contact_share": with_contact / sum(finished_weeks.values())
        if any(finished_weeks.values())
        else None,
        "pilot_pairs": len(pilot),
        "pilot_measure_share": len(pilot_met) / len(pilot) if pilot else None,
        "engaged_participants": 2 * len(engaged_pairs),
        "ever_engaged_share": 2 * len(engaged_pairs) / people,
        "never_engaged_share": (people - 2 * len(engaged_pairs)) / people,
        "first_contact": {
            "pairs_with_contact": len(firsts),
            "share_of_pairs": len(firsts) / len(pairs),
            "median_days": statistics.median(firsts) if firsts else None,
            "days": firsts[0] if only is not None and firsts else None,
        },
        "initiator_balance": {
            "pairs_assessed": len(assessed),
            "one_sided_pairs": len(one_sided),
            "one_sided_share": len(one_sided) / len(assessed) if assessed else None,
            "one_sided": bool(one_sided) if only is not None and assessed else None,
        },
        "reminders": {
            "placed": len(reminders),
            "answered": sum(c["answered"] for c in reminders),
            "bridged": sum(c["bridged"] for c in reminders),
            "answer_rate": sum(c["answered"] for c in reminders) / len(reminders) if reminders else None,
            "participants_reminded": len(per_person),
            "median_participant_answer_rate": statistics.median(rates) if rates else None,
        },
        "messages": messages,
        "participant_weeks": participant_weeks,
        "messages_per_100_participant_weeks": 100 * messages / participant_weeks,
        "calls_per_month": statistics.mean(dosed) if dosed else None,
        "dose_tertiles": [] if only is not None else _tertiles(sorted(dosed)),
    }
    if only is not None:
        figures["sides"] = [
            {
                "side": side,
                "calls_started": started[only][side],
                "share_of_calls": started[only][side] / sum(started[only].values())
                if sum(started[only].values())
                else None,
                "reminders_placed": per_person.get((only, side), [0, 0, 0])[0],
                "reminders_answered": per_person.get((only, side), [0, 0, 0])[1],
                "reminders_bridged": per_person.get((only, side), [0, 0, 0])[2],
            }
            for side in ("a", "b")
        ]
    return figures


def _tertiles(rates: list[float]) -> list[dict[str, Any]]:
    """Pairs in thirds by accepted calls a month, lowest first; a third of 7 pairs is 2, 2, 3."""
    cuts = [len(rates) * t // 3 for t in range(4)]
    thirds = [rates[cuts[t] : cuts[t + 1]] for t in range(3)]
    return [
        {"tertile": t + 1, "pairs": len(part), "min": part[0], "max": part[-1], "mean": statistics.mean(part)}
        for t, part in enumerate(thirds)
        if part
    ]


# ---------------------------------------------------------------- the figures, from the database


MONTH_FIELDS = (
    "month", "pairs", "pairs_finished", "calls", "contacts", "calls_per_pair", "contacts_per_pair",
    "calls_per_participant", "contacts_per_participant", "mean_talk_minutes", "median_talk_minutes",
)  # fmt: skip


def measured(figures: engagement.Engagement, with_sides: bool = False) -> dict[str, Any]:
    """The same fields, read off what the service computed."""
    out: dict[str, Any] = {
        "pairs": figures.pairs,
        "participants": figures.participants,
        "months": [{k: getattr(m, k) for k in MONTH_FIELDS} for m in figures.months],
        "finished_pair_weeks": figures.finished_pair_weeks,
        "pair_weeks_with_contact": figures.pair_weeks_with_contact,
        "weekly_contact_share": figures.weekly_contact_share,
        "pilot_pairs": figures.pilot_pairs,
        "pilot_measure_share": figures.pilot_measure_share,
        "engaged_participants": figures.engaged_participants,
        "ever_engaged_share": figures.ever_engaged_share,
        "never_engaged_share": figures.never_engaged_share,
        "first_contact": vars(figures.first_contact),
        "initiator_balance": vars(figures.initiator_balance),
        "reminders": vars(figures.reminders),
        "messages": figures.messages,
        "participant_weeks": figures.participant_weeks,
        "messages_per_100_participant_weeks": figures.messages_per_100_participant_weeks,
        "calls_per_month": figures.calls_per_month,
        "dose_tertiles": [
            {
                "tertile": d.tertile,
                "pairs": d.pairs,
                "min": d.min_calls_per_month,
                "max": d.max_calls_per_month,
                "mean": d.mean_calls_per_month,
            }
            for d in figures.dose_tertiles
        ],
    }
    if with_sides:
        out["sides"] = [
            {
                "side": s.side,
                "calls_started": s.calls_started,
                "share_of_calls": s.share_of_calls,
                "reminders_placed": s.reminders_placed,
                "reminders_answered": s.reminders_answered,
                "reminders_bridged": s.reminders_bridged,
            }
            for s in figures.sides
        ]
    return out


def _approx(value: Any) -> Any:
    """Floats compared to a millionth (the database sums in another order); the rest exactly."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-9)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return value


# ---------------------------------------------------------------- the tests


def test_the_programme_and_every_pair_measure_what_the_ground_truth_says(
    simulated: tuple[Truth, Any],
) -> None:
    truth, db = simulated
    # the cohort has what the figures must be tested on: silent pairs that staff ended,
    # one-sided pairs, reminders answered, refused and turned into calls, messages, pairs
    # past the pilot's six weeks, and a third month since pairing
    shape = expected(truth)
    assert 0 < shape["never_engaged_share"] < 1 and any(p["ended_at"] for p in truth.pairs)
    assert 0 < shape["reminders"]["bridged"] < shape["reminders"]["answered"] < shape["reminders"]["placed"]
    assert shape["initiator_balance"]["pairs_assessed"] > 0 and shape["messages"] > 0
    assert shape["pilot_pairs"] > 0 and len(shape["months"]) == 3

    for engaged_when in ("accepted", "contact"):
        programme = engagement.programme(db, now=truth.until, tz="UTC", engaged_when=engaged_when)  # type: ignore[arg-type]
        assert measured(programme) == _approx(expected(truth, engaged_when=engaged_when)), engaged_when
    for pair in truth.pairs:
        number = pair["pair"]
        one = engagement.for_pair(
            db, truth.db_ids[number], now=truth.until, tz="UTC", engaged_when="accepted"
        )
        assert measured(one, with_sides=True) == _approx(expected(truth, only=number)), f"pair {number}"


def test_the_research_export_pair_weeks_equal_the_ground_truth(simulated: tuple[Truth, Any]) -> None:
    truth, db = simulated
    ids = research.ResearchIds("a test export key")
    export = research.build(db, ids=ids, now=truth.until, engaged_when="accepted")
    rows = list(csv.DictReader(io.StringIO(export.files[research.PAIR_WEEKS])))
    got = {(r["pair"], int(r["week"])): r for r in rows}

    want: dict[tuple[str, int], dict[str, str]] = {}
    for pair in truth.pairs:
        weeks = -(-_exposure(pair, truth.until) // WEEK)
        for week in range(1, weeks + 1):
            calls = [c for c in truth.calls_of(pair["pair"]) if c["week"] == week]
            partner_calls = [c for c in calls if c["kind"] == "peer" or c["bridged"]]
            by_a = sum(1 for c in partner_calls if c["initiator_side"] == "a")
            by_b = len(partner_calls) - by_a
            want[(ids.pair(truth.db_ids[pair["pair"]]), week)] = {
                "calls": str(sum(c["accepted"] for c in calls)),
                "contacts": str(sum(c["is_contact"] for c in calls)),
                "attempts": str(sum(not c["is_contact"] for c in partner_calls)),
                "talk_minutes": str(round(sum(c["talk_seconds"] for c in calls if c["accepted"]) / 60, 2)),
                "calls_by_a": str(by_a),
                "calls_by_b": str(by_b),
                "reminders_placed": str(sum(c["kind"] == "reminder" for c in calls)),
                "reminders_answered": str(sum(c["kind"] == "reminder" and c["answered"] for c in calls)),
                "reminders_converted": str(sum(c["kind"] == "reminder" and c["bridged"] for c in calls)),
                "messages": str(sum(c["message"] for c in calls)),
            }
    assert set(got) == set(want)
    for key, row in want.items():
        assert {k: got[key][k] for k in row} == row, f"pair-week {key}"
