"""The pairs list and the API say the same about a pair: contacts this period (and which
period), talk time, days without contact, quiet and flagged, twelve calendar weeks (issue 14)."""

from __future__ import annotations

import html as markup
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from app.models import AttentionFlag, Call, Pair
from ivr.vocab import CallKind, Outcome
from tests.conftest import ANA, BEA, CAL, DEE, FakeClock, Programme, Staff
from tests.test_console_audit import Console

BOSTON = "America/New_York"


@pytest.fixture
def boston(app: FastAPI) -> FastAPI:
    # the programme works in Boston: its weeks start on Monday at midnight there
    app.state.context.settings.programme_timezone = BOSTON
    return app


@pytest.fixture
def console(boston: FastAPI, staff: Staff) -> Iterator[Console]:
    c = Console(boston)
    with c.http:
        c.sign_in("nurse")
        yield c


def contact(programme: Programme, pair: int, at: datetime, seconds: int, by: int) -> None:
    """A contact as the call flow records one: accepted at `at`, `seconds` of talk."""
    with programme.session() as db:
        n = db.query(Call).count()
        db.add(
            Call(
                twilio_call_sid=f"CA{n:032d}",
                kind=CallKind.PEER,
                pair_id=pair,
                initiator_id=by,
                started_at=at - timedelta(seconds=30),
                accepted_at=at,
                ended_at=at + timedelta(seconds=seconds),
                duration_seconds=seconds,
                talk_seconds=seconds,
                outcome=Outcome.CONTACT,
            )
        )
        stored = db.get(Pair, pair)
        assert stored is not None
        if stored.last_contact_at is None or stored.last_contact_at < at:
            stored.last_contact_at = at
        db.commit()


def a_pair_made(programme: Programme, clock: FakeClock, days_ago: int, first: str, second: str) -> int:
    """A pair made `days_ago` days before the test clock's now."""
    now = clock.now
    clock.now = now - timedelta(days=days_ago)
    pair = programme.pair(programme.enrol(first[0], first[1]), programme.enrol(second[0], second[1]))
    clock.now = now
    return pair


def rows_of(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        markup.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip())
        for row in body.split("</tr>")[:-1]
    ]


def test_the_api_says_contacts_this_period_with_its_dates_and_the_partners_names(
    boston: FastAPI, client: object, staff: Staff, programme: Programme, clock: FakeClock
) -> None:
    pair = a_pair_made(programme, clock, 20, ("Ana", ANA), ("Bea", BEA))
    contact(programme, pair, clock() - timedelta(days=2), 168, by=1)
    contact(programme, pair, clock() - timedelta(days=10), 300, by=2)  # before this period
    answer = client.get(f"/api/v1/pairs/{pair}", headers=staff["nurse"]).json()  # type: ignore[attr-defined]
    assert answer["contacts_this_period"] == 1 and answer["talk_seconds_this_period"] == 168
    assert answer["period_start"] == "2026-11-10T20:00:00Z" and answer["period_end"] == "2026-11-17T20:00:00Z"
    assert answer["days_since_contact"] == 2
    assert answer["partners"] == [
        {"id": 1, "name": "Ana", "side": "a"},
        {"id": 2, "name": "Bea", "side": "b"},
    ]
    # the older field keeps its meaning: every call started in the period, attempts included
    assert answer["calls_this_period"] == 1
    listed = client.get("/api/v1/pairs", headers=staff["nurse"]).json()["items"]  # type: ignore[attr-defined]
    assert listed[0]["partners"][1]["name"] == "Bea" and listed[0]["contacts_this_period"] == 1


def test_programme_weeks_are_calendar_weeks_from_monday_midnight_in_the_programme_zone(
    boston: FastAPI, client: object, staff: Staff, programme: Programme, clock: FakeClock
) -> None:
    pair = a_pair_made(programme, clock, 30, ("Ana", ANA), ("Bea", BEA))
    # Sunday 23:30 in Boston is already Monday in UTC: it belongs to the week before
    contact(programme, pair, datetime(2026, 11, 16, 4, 30, tzinfo=UTC), 120, by=1)
    # Monday 00:30 in Boston: this week
    contact(programme, pair, datetime(2026, 11, 16, 5, 30, tzinfo=UTC), 180, by=2)
    first = client.get("/api/v1/stats", headers=staff["nurse"]).json()["by_week"]  # type: ignore[attr-defined]
    assert len(first) == 12
    assert first[-1]["week_start"] == "2026-11-16T00:00:00-05:00"
    assert first[-1]["week_end"] == "2026-11-23T00:00:00-05:00"
    assert (first[-1]["contacts"], first[-1]["minutes"]) == (1, 3.0)
    assert (first[-2]["week_start"], first[-2]["contacts"]) == ("2026-11-09T00:00:00-05:00", 1)
    assert first[0]["week_start"] == "2026-08-31T00:00:00-04:00"  # daylight time then: still midnight
    clock.advance(hours=30)
    later = client.get("/api/v1/stats", headers=staff["nurse"]).json()["by_week"]  # type: ignore[attr-defined]
    assert later == first, "asking a day later in the same week gives the same weeks"


def test_the_pairs_list_says_which_period_and_shows_talk_time_in_minutes_and_seconds(
    console: Console, programme: Programme, clock: FakeClock
) -> None:
    pair = a_pair_made(programme, clock, 20, ("Ana", ANA), ("Bea", BEA))
    contact(programme, pair, clock() - timedelta(days=2), 168, by=1)
    html = console.http.get("/console/pairs").text
    assert "Contacts this period" in html and "7 days: Nov 10 – Nov 17" in html
    (row,) = rows_of(html)
    assert "Ana & Bea" in row and "2 min 48 s" in row and "2 days ago" in row
    assert "quiet" not in row and "flagged" not in row


def test_the_pairs_list_explains_quiet_and_flagged_and_marks_them_in_words(
    console: Console, programme: Programme, clock: FakeClock
) -> None:
    talking = a_pair_made(programme, clock, 30, ("Ana", ANA), ("Bea", BEA))
    contact(programme, talking, clock() - timedelta(days=1), 90, by=1)
    flagged = a_pair_made(programme, clock, 30, ("Cal", CAL), ("Dee", DEE))
    with programme.session() as db:
        db.add(AttentionFlag(pair_id=flagged, period_start=clock(), raised_at=clock(), reason="quiet"))
        db.commit()
    html = console.http.get("/console/pairs").text
    legend = html.split('<dl class="legend"', 1)[1].split("</dl>", 1)[0]
    assert "no contact for 7 days or more" in legend and "quiet two periods in a row" in legend
    cal_and_dee, ana_and_bea = rows_of(html)
    assert "quiet" in cal_and_dee and "flagged" in cal_and_dee and "paired 30 days ago" in cal_and_dee
    assert "quiet" not in ana_and_bea and "flagged" not in ana_and_bea


def test_the_strip_is_twelve_calendar_weeks_ending_with_this_week(
    console: Console, programme: Programme, clock: FakeClock
) -> None:
    pair = a_pair_made(programme, clock, 40, ("Ana", ANA), ("Bea", BEA))
    contact(programme, pair, datetime(2026, 11, 16, 5, 30, tzinfo=UTC), 120, by=1)  # Mon 00:30 Boston
    contact(programme, pair, datetime(2026, 11, 16, 4, 30, tzinfo=UTC), 120, by=1)  # Sun 23:30 Boston
    html = console.http.get("/console/pairs").text
    assert 'class="strip-axis"' in html and "this week</span>" in html and "<span>Aug 31</span>" in html
    label = re.search(r'class="strip" role="img" aria-label="([^"]+)"', html)
    assert label is not None
    assert label.group(1).startswith("contacts per week, oldest first: week of Aug 31: 0")
    assert label.group(1).endswith("week of Nov 9: 1, this week: 1")
    assert 'title="This week: 1 contact"' in html


def test_pairs_sort_and_filter_by_days_since_last_contact(
    console: Console, programme: Programme, clock: FakeClock
) -> None:
    recent = a_pair_made(programme, clock, 40, ("Ana", ANA), ("Bea", BEA))
    contact(programme, recent, clock() - timedelta(days=3), 90, by=1)
    never = a_pair_made(programme, clock, 9, ("Cal", CAL), ("Dee", DEE))
    older = a_pair_made(programme, clock, 60, ("Eve", "+16175550105"), ("Fay", "+16175550106"))
    contact(programme, older, clock() - timedelta(days=20), 90, by=5)
    assert never  # quiet since it was made, 9 days ago

    def names(query: str) -> list[str]:
        rows = rows_of(console.http.get(f"/console/pairs?{query}").text)
        return [" ".join(r.split()[:3]) for r in rows]

    assert names("") == ["Eve & Fay", "Cal & Dee", "Ana & Bea"]  # newest pair first
    assert names("sort=quietest") == ["Eve & Fay", "Cal & Dee", "Ana & Bea"]
    assert names("sort=quietest&quiet=14") == ["Eve & Fay"]
    assert names("quiet=7") == ["Eve & Fay", "Cal & Dee"]
    page = console.http.get("/console/pairs?sort=quietest&quiet=7").text
    assert '<option value="quietest" selected>' in page and '<option value="7" selected>' in page


def test_the_quietest_order_pages_through_every_pair_once(
    console: Console, programme: Programme, clock: FakeClock
) -> None:
    made = [
        a_pair_made(
            programme, clock, 30 + i, (f"P{i}a", f"+121255501{i:02d}"), (f"P{i}b", f"+131255501{i:02d}")
        )
        for i in range(30)
    ]
    seen: list[str] = []
    url = "/console/pairs?sort=quietest"
    while url:
        html = console.http.get(url).text
        seen += [r.split(" ")[0] for r in rows_of(html)]
        found = re.search(r'<p class="pager"><a href="\?([^"]+)">', html)
        url = "/console/pairs?" + found.group(1).replace("&amp;", "&") if found else ""
    assert len(seen) == len(made) == len(set(seen))
    assert seen[0] == "P29a" and seen[-1] == "P0a"  # made longest ago is quiet longest


def test_the_pair_page_names_its_period_without_a_stray_space(
    console: Console, programme: Programme, clock: FakeClock
) -> None:
    pair = a_pair_made(programme, clock, 20, ("Ana", ANA), ("Bea", BEA))
    html = console.http.get(f"/console/pairs/{pair}").text
    assert "(Nov 10 – Nov 17)" in html


def test_the_api_filters_pairs_by_days_since_contact_as_the_console_does(
    client: object, staff: Staff, programme: Programme, clock: FakeClock
) -> None:
    recent = a_pair_made(programme, clock, 40, ("Ana", ANA), ("Bea", BEA))
    contact(programme, recent, clock() - timedelta(days=3), 90, by=1)
    quiet = a_pair_made(programme, clock, 9, ("Cal", CAL), ("Dee", DEE))
    listed = client.get("/api/v1/pairs?days_since_contact=7", headers=staff["nurse"]).json()  # type: ignore[attr-defined]
    assert [p["id"] for p in listed["items"]] == [quiet] and listed["items"][0]["days_since_contact"] == 9
    everyone = client.get("/api/v1/pairs?days_since_contact=0", headers=staff["nurse"]).json()  # type: ignore[attr-defined]
    assert len(everyone["items"]) == 2
    refused = client.get("/api/v1/pairs?days_since_contact=-1", headers=staff["nurse"])  # type: ignore[attr-defined]
    assert refused.status_code == 422
