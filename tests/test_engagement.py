"""Engagement figures against hand-built call history: every figure worked out by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from app.models import AuditEvent, Call, Pair
from app.services import engagement
from app.settings import Settings
from ivr.vocab import CallKind, Outcome
from tests.conftest import FakeClock, Programme, Staff
from tests.engagement_data import DAY, History, with_engagement_routes

# the clock fixture: 2026-11-17 20:00 UTC
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # pair 1: 169 days 8 hours before now
API = "/api/v1/stats/engagement"


@pytest.fixture
def history(app: FastAPI) -> History:
    with_engagement_routes(app)
    return History(app)


def configure(app: FastAPI, **changes: Any) -> None:
    ctx = app.state.context
    ctx.settings = Settings(**{**ctx.settings.model_dump(), **changes})


def figures(app: FastAPI, clock: FakeClock, cohort: str | None = None) -> engagement.Engagement:
    settings: Settings = app.state.context.settings
    with app.state.sessionmaker() as db:
        return engagement.programme(
            db, now=clock(), tz=settings.programme_timezone, engaged_when=settings.engaged_when, cohort=cohort
        )


def get(client: TestClient, staff: Staff, path: str, role: str = "nurse") -> Any:
    response = client.get(path, headers=staff[role])
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- the three-pair programme


def three_pairs(history: History) -> tuple[int, int, int]:
    """Pair 1 paired 169 d 8 h ago; pair 2 28 d 8 h ago, no calls; pair 3 paired for 45 days, ended."""
    p1 = history.pair(T0)
    history.call(p1, T0 + timedelta(hours=1), by="a", seconds=600)  # month 1, week 1
    history.call(p1, T0 + 3 * DAY, by="b", seconds=300)  # month 1, week 1
    history.call(p1, T0 + 10 * DAY, by="a")  # not answered: an attempt, not a call
    history.call(p1, T0 + 29 * DAY + timedelta(hours=23), by="a", seconds=30)  # short; month 1, week 5
    history.call(p1, T0 + 30 * DAY, by="a", seconds=1200)  # exactly day 30: month 2, week 5
    history.call(p1, T0 + 45 * DAY, by="a", seconds=120)  # month 2, week 7
    history.call(p1, T0 - DAY, by="a", seconds=900)  # before pairing: belongs to no month
    history.call(p1, T0 + 5 * DAY, by="a", seconds=900, kind=CallKind.OUTREACH)  # staff's, not the pair's
    history.call(p1, T0 + timedelta(days=168, hours=12), by="b", seconds=300)  # month 6, week 25 (unfinished)
    p2 = history.pair(datetime(2026, 10, 20, 12, 0, tzinfo=UTC))
    start3 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    p3 = history.pair(start3, ended=start3 + 45 * DAY)
    history.call(p3, start3 + 2 * DAY, by="a", seconds=900)  # month 1, week 1
    history.call(p3, start3 + 16 * DAY, by="b", seconds=50)  # short; month 1, week 3
    history.call(p3, start3 + 50 * DAY, by="a", seconds=600)  # after the pair ended
    return p1, p2, p3


def test_calls_and_minutes_by_month_since_pairing(app: FastAPI, history: History, clock: FakeClock) -> None:
    three_pairs(history)
    result = figures(app, clock)
    months = {m.month: m for m in result.months}
    assert sorted(months) == [1, 2, 3, 4, 5, 6]  # pair 1 is in its sixth month

    one = months[1]  # all three pairs; accepted talk 600, 300, 30, 900, 50 s
    assert (one.pairs, one.pairs_finished, one.calls, one.contacts) == (3, 2, 5, 3)
    assert one.calls_per_pair == pytest.approx(5 / 3)
    assert one.contacts_per_pair == pytest.approx(1.0)
    assert one.calls_per_participant == pytest.approx(5 / 6)
    assert one.contacts_per_participant == pytest.approx(0.5)
    assert one.mean_talk_minutes == pytest.approx(1880 / 5 / 60)
    assert one.median_talk_minutes == pytest.approx(5.0)
    assert (one.reference_calls_per_pair, one.reference_talk_minutes) == (2.4, 15.6)

    two = months[2]  # pairs 1 and 3; 1200 and 120 s, both in pair 1
    assert (two.pairs, two.pairs_finished, two.calls, two.contacts) == (2, 1, 2, 2)
    assert two.calls_per_pair == pytest.approx(1.0)
    assert two.mean_talk_minutes == pytest.approx(11.0)
    assert two.median_talk_minutes == pytest.approx(11.0)  # the mean of the middle two
    assert two.reference_calls_per_pair == pytest.approx(2.4 - 1.6 / 5)
    assert two.reference_talk_minutes == pytest.approx(15.6 - 8.8 / 5)

    for m in (3, 4, 5):
        assert (months[m].pairs, months[m].pairs_finished, months[m].calls) == (1, 1, 0)
        assert months[m].mean_talk_minutes is None and months[m].median_talk_minutes is None
    six = months[6]  # under way: pair 1 has not finished it
    assert (six.pairs, six.pairs_finished, six.calls, six.contacts) == (1, 0, 1, 1)
    assert six.median_talk_minutes == pytest.approx(5.0)
    assert (six.reference_calls_per_pair, six.reference_talk_minutes) == (
        pytest.approx(0.8),
        pytest.approx(6.8),
    )


def test_weekly_contact_counts_finished_pair_weeks_only(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    three_pairs(history)
    result = figures(app, clock)
    # finished weeks: pair 1 24 (its 25th, with a contact, is under way), pair 2 4, pair 3 6
    assert result.finished_pair_weeks == 34
    # contacts in weeks 1, 5, 7 of pair 1 and week 1 of pair 3 (its week-3 call was short)
    assert result.pair_weeks_with_contact == 4
    assert result.weekly_contact_share == pytest.approx(4 / 34)
    # pilot: pairs 1 and 3 have 6 finished weeks; pair 1 had contacts in weeks 1 and 5, pair 3 in one
    assert result.pilot_pairs == 2
    assert result.pilot_measure_share == pytest.approx(0.5)


def test_a_contact_in_a_week_under_way_counts_once_the_week_is_over(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    pair = history.pair(clock() - 10 * DAY)
    history.call(pair, clock() - DAY, seconds=120)  # week 2, under way
    before = figures(app, clock)
    assert (before.finished_pair_weeks, before.pair_weeks_with_contact) == (1, 0)
    assert before.weekly_contact_share == 0.0
    assert before.pilot_measure_share is None  # no pair has 6 finished weeks
    clock.advance(days=4)
    after = figures(app, clock)
    assert (after.finished_pair_weeks, after.pair_weeks_with_contact) == (2, 1)
    assert after.weekly_contact_share == pytest.approx(0.5)


def test_engaged_means_an_accepted_call_or_a_contact_as_set(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    start = clock() - 20 * DAY
    short_only = history.pair(start)
    history.call(short_only, start + DAY, seconds=40)  # accepted, short
    talked = history.pair(start)
    history.call(talked, start + DAY, seconds=400)
    never = history.pair(start)
    history.call(never, start + DAY)  # rang out
    history.call(never, start + 2 * DAY, by="b", outcome=Outcome.DECLINED)

    accepted = figures(app, clock)
    assert accepted.engaged_when == "accepted"
    assert (accepted.participants, accepted.engaged_participants) == (6, 4)
    assert accepted.ever_engaged_share == pytest.approx(4 / 6)
    assert accepted.never_engaged_share == pytest.approx(2 / 6)

    configure(app, engaged_when="contact")
    contact = figures(app, clock)
    assert contact.engaged_when == "contact"
    assert contact.engaged_participants == 2
    assert contact.ever_engaged_share == pytest.approx(2 / 6)
    assert contact.never_engaged_share == pytest.approx(4 / 6)


def test_an_empty_programme_or_cohort_has_no_months_and_null_shares(
    app: FastAPI, history: History, client: TestClient, staff: Staff
) -> None:
    for path in (API, f"{API}?cohort=2026-01"):
        body = get(client, staff, path)
        assert body["months"] == []
        for share in (
            "weekly_contact_share",
            "pilot_measure_share",
            "ever_engaged_share",
            "never_engaged_share",
            "messages_per_100_participant_weeks",
        ):
            assert body[share] is None, share
        assert (
            body["reminders"]["placed"] == body["reminders"]["answered"] == body["reminders"]["bridged"] == 0
        )
        assert body["pairs"] == 0 and body["dose_tertiles"] == []
    history.pair(datetime(2026, 3, 10, tzinfo=UTC))
    assert get(client, staff, f"{API}?cohort=2026-01")["months"] == []


def test_cohorts_are_months_of_pairing_in_the_programme_zone(
    app: FastAPI, history: History, client: TestClient, staff: Staff, clock: FakeClock
) -> None:
    configure(app, programme_timezone="America/New_York")
    late_march = history.pair(datetime(2026, 4, 1, 3, 30, tzinfo=UTC))  # 23:30 on March 31 in New York
    early_april = history.pair(datetime(2026, 4, 1, 4, 30, tzinfo=UTC))  # 00:30 on April 1
    history.call(late_march, datetime(2026, 4, 2, tzinfo=UTC), seconds=120)
    history.call(early_april, datetime(2026, 4, 2, tzinfo=UTC), seconds=600)
    history.call(early_april, datetime(2026, 4, 3, tzinfo=UTC), seconds=60)

    march = get(client, staff, f"{API}?cohort=2026-03")
    april = get(client, staff, f"{API}?cohort=2026-04")
    assert (march["cohort"], march["pairs"], march["months"][0]["calls_per_pair"]) == ("2026-03", 1, 1.0)
    assert (april["cohort"], april["pairs"], april["months"][0]["calls_per_pair"]) == ("2026-04", 1, 2.0)
    assert april["months"][0]["mean_talk_minutes"] == pytest.approx(5.5)
    whole = get(client, staff, API)
    assert whole["cohort"] is None and whole["pairs"] == 2 and whole["months"][0]["calls_per_pair"] == 1.5

    configure(app, programme_timezone="UTC")  # in UTC both were made in April
    assert get(client, staff, f"{API}?cohort=2026-03")["pairs"] == 0
    assert get(client, staff, f"{API}?cohort=2026-04")["pairs"] == 2


def test_first_contact_balance_reminders_messages_and_dose(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    start = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)  # 47 d 8 h before now
    pair = history.pair(start)
    a, b = history.sides(pair)
    history.reminder_call(pair, start + 3 * DAY, to="a", bridged_seconds=200)  # answered, pressed 1: a call
    history.reminder_call(pair, start + 10 * DAY, to="a", answered=False)
    history.reminder_call(pair, start + 10 * DAY, to="b", machine=True)
    for day in (5, 6, 8):
        history.call(pair, start + day * DAY, by="a", seconds=90)
    history.call(pair, start + 9 * DAY, by="b", seconds=70)
    history.message(a, start + 4 * DAY)
    history.message(a, start + 20 * DAY)
    history.message(b, start - DAY)  # before pairing
    # three pairs paired exactly 90 days: 0, 1 and 3 calls a month
    ninety = clock() - 90 * DAY
    history.pair(ninety)
    one_a_month = history.pair(ninety)
    three_a_month = history.pair(ninety)
    for n in range(3):
        history.call(one_a_month, ninety + (1 + 30 * n) * DAY, seconds=30)
    for n in range(9):
        history.call(three_a_month, ninety + (1 + 10 * n) * DAY, by="ab"[n % 2], seconds=300)

    result = figures(app, clock)
    assert result.first_contact.pairs_with_contact == 2  # the 30-second calls are not contacts
    assert result.first_contact.share_of_pairs == pytest.approx(0.5)
    assert result.first_contact.median_days == pytest.approx((3 + 1) / 2)
    # pair: a started 4 of 5 calls; three_a_month 5 of 9 (balanced); one_a_month has 3 calls
    assert result.initiator_balance.pairs_assessed == 2
    assert result.initiator_balance.one_sided_pairs == 1
    assert result.initiator_balance.one_sided_share == pytest.approx(0.5)
    r = result.reminders
    assert (r.placed, r.answered, r.bridged) == (3, 1, 1)
    assert r.answer_rate == pytest.approx(1 / 3)
    assert r.participants_reminded == 2
    assert r.median_participant_answer_rate == pytest.approx((1 / 2 + 0) / 2)
    assert result.messages == 2
    weeks = 2 * (47 + 8 / 24) / 7 + 3 * 2 * 90 / 7
    assert result.participant_weeks == pytest.approx(weeks)
    assert result.messages_per_100_participant_weeks == pytest.approx(200 / weeks)
    rates = [0.0, 1.0, 3.0, 5 / ((47 + 8 / 24) / 30)]
    assert result.calls_per_month == pytest.approx(sum(rates) / 4)
    tertiles = [
        (t.tertile, t.pairs, t.min_calls_per_month, t.max_calls_per_month) for t in result.dose_tertiles
    ]
    assert tertiles == [(1, 1, 0.0, 0.0), (2, 1, 1.0, 1.0), (3, 2, 3.0, pytest.approx(rates[3]))]


def test_one_pairs_figures_with_who_started_the_calls(
    app: FastAPI, history: History, client: TestClient, staff: Staff, clock: FakeClock
) -> None:
    start = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    pair = history.pair(start)
    a, b = history.sides(pair)
    other = history.pair(start)
    history.call(other, start + DAY, seconds=999)
    history.reminder_call(pair, start + 3 * DAY, to="a", bridged_seconds=200)
    history.reminder_call(pair, start + 10 * DAY, to="b", answered=False)
    for day in (5, 6, 8):
        history.call(pair, start + day * DAY, by="a", seconds=90)
    history.call(pair, start + 9 * DAY, by="b", seconds=70)

    body = get(client, staff, f"/api/v1/pairs/{pair}/engagement")
    assert (body["pair_id"], body["pairs"], body["participants"], body["cohort"]) == (pair, 1, 2, "2026-10")
    assert [m["calls"] for m in body["months"]] == [5, 0]  # month 2 has begun
    assert body["months"][0]["median_talk_minutes"] == pytest.approx(1.5)
    assert body["first_contact"]["days"] == pytest.approx(3.0)
    assert body["initiator_balance"]["one_sided"] is True
    sides = {s["side"]: s for s in body["sides"]}
    assert (sides["a"]["participant_id"], sides["a"]["calls_started"], sides["a"]["share_of_calls"]) == (
        a,
        4,
        0.8,
    )
    assert (sides["b"]["participant_id"], sides["b"]["calls_started"]) == (b, 1)
    assert (
        sides["a"]["reminders_placed"],
        sides["a"]["reminders_answered"],
        sides["a"]["reminders_bridged"],
    ) == (
        1,
        1,
        1,
    )
    assert (sides["b"]["reminders_placed"], sides["b"]["reminder_answer_rate"]) == (1, 0.0)
    assert body["reminders"] == {
        "placed": 2,
        "answered": 1,
        "bridged": 1,
        "answer_rate": 0.5,
        "participants_reminded": 2,
        "median_participant_answer_rate": 0.5,
    }
    assert body["ever_engaged_share"] == 1.0 and body["dose_tertiles"] == []


# ---------------------------------------------------------------- the API: shape, roles, errors, audit


def test_the_shape_is_the_one_design_md_gives(
    app: FastAPI, history: History, client: TestClient, staff: Staff
) -> None:
    three_pairs(history)
    body = get(client, staff, API)
    for key, kind in {
        "months": list,
        "weekly_contact_share": float,
        "pilot_measure_share": float,
        "ever_engaged_share": float,
        "never_engaged_share": float,
        "reminders": dict,
        "messages_per_100_participant_weeks": float,
    }.items():
        assert isinstance(body[key], kind), key
    for share in ("weekly_contact_share", "pilot_measure_share", "ever_engaged_share", "never_engaged_share"):
        assert 0 <= body[share] <= 1
    assert body["messages_per_100_participant_weeks"] == 0.0
    assert set(body["reminders"]) >= {"placed", "answered", "bridged"}
    assert all(isinstance(body["reminders"][k], int) for k in ("placed", "answered", "bridged"))
    month = body["months"][0]
    assert set(month) >= {
        "month",
        "pairs",
        "calls_per_pair",
        "contacts_per_pair",
        "mean_talk_minutes",
        "median_talk_minutes",
    }
    assert isinstance(month["month"], int) and isinstance(month["pairs"], int)
    assert [m["month"] for m in body["months"]] == list(range(1, len(body["months"]) + 1))
    for month in body["months"]:
        for key in ("calls_per_pair", "contacts_per_pair"):
            assert isinstance(month[key], float), key
        for key in ("mean_talk_minutes", "median_talk_minutes"):
            assert month[key] is None or isinstance(month[key], float), key


def test_nurses_and_up_read_it_and_every_read_is_audited(
    app: FastAPI, history: History, client: TestClient, staff: Staff, programme: Programme
) -> None:
    pair = history.pair(datetime(2026, 9, 1, tzinfo=UTC))
    for role in ("nurse", "staff", "admin"):
        assert client.get(API, headers=staff[role]).status_code == 200
        assert client.get(f"/api/v1/pairs/{pair}/engagement", headers=staff[role]).status_code == 200
    assert client.get(API).status_code == 401
    assert client.get(f"{API}?cohort=2026-09", headers=staff["nurse"]).status_code == 200
    events = [(e.actor, e.action, e.target) for e in programme.rows(AuditEvent)]
    assert ("nurse@clinic.example.org", "engagement.read", "programme") in events
    assert ("nurse@clinic.example.org", "engagement.read", "cohort:2026-09") in events
    assert ("admin@clinic.example.org", "engagement.read", f"pair:{pair}") in events


@pytest.mark.parametrize(
    "cohort", ["2026-13", "2026-00", "26-03", "2026-3", "march", "2026-03-01", "", "2026-03 "]
)
def test_a_malformed_cohort_is_a_422_naming_the_field(
    client: TestClient, staff: Staff, history: History, cohort: str
) -> None:
    response = client.get(API, params={"cohort": cohort}, headers=staff["nurse"])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cohort"]


def test_an_unknown_pair_is_a_404_and_a_bad_id_a_422(
    client: TestClient, staff: Staff, history: History
) -> None:
    missing = client.get("/api/v1/pairs/999/engagement", headers=staff["nurse"])
    assert missing.status_code == 404 and "pair 999" in missing.json()["detail"]
    for bad in ("0", "x", str(2**63)):
        assert client.get(f"/api/v1/pairs/{bad}/engagement", headers=staff["nurse"]).status_code == 422


# ---------------------------------------------------------------- settled history equals a fresh count


def random_history(history: History, rng: random.Random, now: datetime, pairs: int, calls: int) -> list[int]:
    made = [history.pair(now - rng.uniform(1, 200) * DAY) for _ in range(pairs)]
    for _ in range(calls):
        pair = rng.choice(made)
        at = now - rng.uniform(0, 200) * DAY
        kind = CallKind.REMINDER if rng.random() < 0.1 else CallKind.PEER
        seconds = rng.choice([None, None, 20, 59, 60, 61, 300, 1800])
        if kind == CallKind.REMINDER and seconds is None:
            history.reminder_call(pair, at, to=rng.choice("ab"), answered=rng.random() < 0.5)
        else:
            history.call(pair, at, by=rng.choice("ab"), seconds=seconds, kind=kind)
        if rng.random() < 0.1:
            history.message(history.sides(pair)[rng.randrange(2)], at)
    return made


def test_the_settled_history_gives_the_same_figures_as_a_fresh_count(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    rng = random.Random(15)
    pairs = random_history(history, rng, clock(), pairs=12, calls=300)
    tz = "America/New_York"
    settled = engagement.SettledHistory(tz, from_calls=0)

    def both() -> tuple[engagement.Engagement, engagement.Engagement]:
        with app.state.sessionmaker() as db:
            kept = engagement.programme(db, now=clock(), tz=tz, engaged_when="accepted", history=settled)
            fresh = engagement.programme(db, now=clock(), tz=tz, engaged_when="accepted")
            return kept, fresh

    kept, fresh = both()
    assert kept == fresh and kept.months
    # history loaded after the fact (old calls with new ids), a call of the last hour, a
    # call still under way that then ends, and the horizon moving on by two days
    history.call(pairs[0], clock() - 100 * DAY, seconds=700)
    history.message(history.sides(pairs[0])[0], clock() - 100 * DAY)
    history.message(history.sides(pairs[1])[1], clock() - timedelta(minutes=5))
    live = history.call(pairs[1], clock() - timedelta(minutes=30), seconds=None, outcome=Outcome.IN_PROGRESS)
    kept, fresh = both()
    assert kept == fresh
    # a pair ends and another is made: the kept pairs are read again
    with app.state.sessionmaker() as db:
        db.execute(update(Pair).where(Pair.id == pairs[3]).values(ended_at=clock() - 3 * DAY))
        db.commit()
    history.pair(clock() - 2 * DAY)
    kept, fresh = both()
    assert kept == fresh and kept.pairs == len(pairs) + 1
    with app.state.sessionmaker() as db:
        db.execute(
            update(Call)
            .where(Call.id == live)
            .values(
                accepted_at=clock() - timedelta(minutes=29), duration_seconds=240, outcome=Outcome.CONTACT
            )
        )
        db.commit()
    kept, fresh = both()
    assert kept == fresh
    clock.advance(days=2)
    history.call(pairs[2], clock() - timedelta(hours=1), by="b", seconds=75)
    kept, fresh = both()
    assert kept == fresh
    for cohort in {engagement.cohort_of(clock() - d * DAY, tz) for d in range(0, 200, 20)}:
        with app.state.sessionmaker() as db:
            kept_c = engagement.programme(
                db, now=clock(), tz=tz, engaged_when="contact", cohort=cohort, history=settled
            )
            fresh_c = engagement.programme(db, now=clock(), tz=tz, engaged_when="contact", cohort=cohort)
        assert kept_c == fresh_c


def test_reading_on_sqlite_leaves_the_write_lock_to_the_phone_line(app: FastAPI, history: History) -> None:
    if app.state.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never block writers")
    history.pair(datetime(2026, 9, 1, tzinfo=UTC))
    with app.state.sessionmaker() as request_db:
        request_db.execute(text("SELECT 1"))  # the request's transaction holds the write lock now
        with engagement.reading(request_db) as snapshot:
            snapshot.execute(text("SELECT count(*) FROM call")).scalar()
            with app.state.phone_sessionmaker() as phone:  # a webhook writing meanwhile
                phone.execute(text("UPDATE pair SET notes = 'written while reading'"))
                phone.commit()
