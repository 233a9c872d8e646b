"""The synthetic cohort: what the calls table says equals what the simulation meant, call for call."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.models import Call, CareTeamMessage, Pair
from app.settings import Settings
from app.simulator import cohort
from tests.conftest import AUTH_TOKEN, SECRET, suite_settings

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; the weeks cross the change to summer time
WEEK = timedelta(days=7)


def _settings(database_url: str) -> Settings:
    return suite_settings(database_url, support_phone_number=None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _calls_as_stored(database_url: str) -> tuple[list[dict[str, object]], int]:
    engine = make_engine(_settings(database_url).database_url)
    try:
        with make_sessionmaker(engine)() as db:
            pairs = list(db.scalars(select(Pair).order_by(Pair.id)))
            index = {pair.id: n for n, pair in enumerate(pairs, start=1)}
            by_id = {pair.id: pair for pair in pairs}
            rows = []
            for call in db.scalars(select(Call).order_by(Call.id)):
                assert call.pair_id is not None
                pair = by_id[call.pair_id]
                side_a = min(pair.participant_a_id, pair.participant_b_id)
                started = _aware(call.started_at)
                rows.append(
                    {
                        "pair": index[call.pair_id],
                        "week": (started - _aware(pair.started_at)) // WEEK + 1,
                        "initiator_side": "a" if call.initiator_id == side_a else "b",
                        "outcome": str(call.outcome),
                        "is_contact": call.outcome == "contact",
                        "talk_seconds": call.duration_seconds or 0,
                        "kind": str(call.kind),
                        "accepted": call.accepted_at is not None,
                    }
                )
            messages = len(list(db.scalars(select(CareTeamMessage.id))))
    finally:
        engine.dispose()
    return rows, messages


KEYS = ("pair", "week", "initiator_side", "outcome", "is_contact", "kind", "accepted")


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_the_calls_table_equals_the_ground_truth_call_for_call(
    database_url: str, tmp_path: Path, seed: int
) -> None:
    truth_file = tmp_path / "truth.jsonl"
    report = cohort.simulate(
        _settings(database_url), pairs=8, weeks=12, seed=seed, start=START, truth=truth_file
    )
    truth = cohort.read_truth(truth_file)
    stored, messages = _calls_as_stored(database_url)

    assert len(stored) == len(truth) == report.calls
    for n, (meant, got) in enumerate(zip(truth, stored, strict=True)):
        assert {k: meant[k] for k in KEYS} == {k: got[k] for k in KEYS}, f"call {n + 1}: {meant}"
        assert abs(int(meant["talk_seconds"]) - int(str(got["talk_seconds"]))) <= 1, f"call {n + 1}"
    assert messages == sum(1 for t in truth if t["message"])
    # the cohort has the shape it promises: engaged and silent pairs, refusals, reminders
    outcomes = {t["outcome"] for t in truth}
    assert {"contact", "no_answer", "declined"} <= outcomes
    assert any(t["kind"] == "reminder" for t in truth)
    talked = {t["pair"] for t in truth if t["accepted"]}
    assert 0 < len(talked) <= 8


def test_the_figures_from_the_database_equal_the_figures_from_the_truth(
    database_url: str, tmp_path: Path
) -> None:
    """Accepted calls, contacts and talk minutes by month since pairing, both ways."""
    truth_file = tmp_path / "truth.jsonl"
    cohort.simulate(_settings(database_url), pairs=10, weeks=10, seed=3, start=START, truth=truth_file)
    truth = cohort.read_truth(truth_file)
    stored, _ = _calls_as_stored(database_url)

    def figures(rows: list[dict[str, object]]) -> dict[str, object]:
        accepted = [r for r in rows if r["accepted"]]
        return {
            "accepted_by_month": [
                sum(1 for r in accepted if cohort.month_of(int(str(r["week"]))) == m) for m in range(1, 4)
            ],
            "contacts": sum(1 for r in rows if r["is_contact"]),
            "median_talk_minutes": round(
                statistics.median(int(str(r["talk_seconds"])) for r in accepted) / 60
            ),
            "engaged_pairs": len({r["pair"] for r in accepted}),
            "calls_by_a": sum(1 for r in rows if r["initiator_side"] == "a"),
        }

    assert figures(truth) == figures(stored)


def test_fictional_numbers_only() -> None:
    numbers = [cohort.fictional_number(i) for i in range(2 * cohort.MAX_PAIRS)]
    assert len(set(numbers)) == len(numbers)
    assert all(n[5:9] == "5550" and 100 <= int(n[8:]) <= 199 for n in numbers)


def test_simulate_cohort_writes_the_truth_and_its_pairs_beside_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from app import settings as settings_module
    from app.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    settings_module.get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0

    truth = tmp_path / "truth.jsonl"
    result = runner.invoke(cli, ["simulate-cohort", "--pairs", "3", "--weeks", "2", "--truth", str(truth)])

    assert result.exit_code == 0, result.output
    assert f"ground truth: {truth}" in result.output
    pairs = cohort.read_truth_pairs(truth)
    assert [p["pair"] for p in pairs] == [1, 2, 3]
    assert f"pairs: {tmp_path / 'truth.pairs.jsonl'} (3 pairs)" in result.output
    assert all(p["ended_at"] is None and p["until"] > p["paired_at"] for p in pairs)
    settings_module.get_settings.cache_clear()
