"""The console's engagement page: figures a nurse reads in five seconds, and the staff's zip."""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.models import AuditEvent
from app.services import research
from tests.conftest import FakeClock, Staff
from tests.engagement_data import DAY, History, with_engagement_routes

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGE = "/console/engagement"


class Browser:
    """Cookies of one signed-in staff member, through the real sign-in form."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.http = TestClient(app, base_url="https://testserver", follow_redirects=False)

    def sign_in(self, role: str) -> None:
        form = self.http.get("/console/login")
        response = self.http.post(
            "/console/login",
            data={
                "email": f"{role}@clinic.example.org",
                "password": f"{role}-password-long",
                "csrf_token": csrf(form.text),
                "next": "/console/",
            },
        )
        assert response.status_code == 303, response.text

    def events(self) -> list[tuple[str, str, str | None]]:
        with self.app.state.sessionmaker() as db:
            rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id))
            return [(e.actor, e.action, e.target) for e in rows]

    def count(self, action: str) -> int:
        with self.app.state.sessionmaker() as db:
            return int(db.scalar(select(func.count()).where(AuditEvent.action == action)) or 0)


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def history(app: FastAPI) -> History:
    with_engagement_routes(app)
    return History(app)


@pytest.fixture
def browser(app: FastAPI, staff: Staff, history: History) -> Iterator[Browser]:
    b = Browser(app)
    with b.http:
        yield b


def programme(history: History, clock: FakeClock) -> None:
    """Three pairs, paired 100 days ago: one talks weekly, one once, one never."""
    start = clock() - 100 * DAY
    weekly, once, never = (history.pair(start) for _ in range(3))
    for week in range(14):
        history.call(weekly, start + (7 * week + 1) * DAY, by="ab"[week % 2], seconds=600 + 60 * week)
    history.call(once, start + 2 * DAY, seconds=300)
    history.call(never, start + 3 * DAY)
    history.reminder_call(never, start + 9 * DAY, to="a", answered=True)
    a, _ = history.sides(weekly)
    history.message(a, start + 20 * DAY)


def test_a_nurse_reads_the_curve_the_shares_and_the_months(
    browser: Browser, history: History, clock: FakeClock
) -> None:
    programme(history, clock)
    browser.sign_in("nurse")
    page = browser.http.get(PAGE)
    assert page.status_code == 200, page.text
    html = page.text
    assert (
        "In their first month, pairs made <strong>2.0 calls</strong> of <strong>10.8 minutes</strong>" in html
    )
    assert "the trials saw 2.4 calls of 15.6 minutes" in html
    # the weekly pair talked in all 14 finished weeks, the other two in one: 15 of 42
    assert "36 %</span> of finished pair-weeks had a contact" in html
    assert "33 %</span> never engaged" in html  # 2 of 6 participants
    assert "33 %</span> talked in 2 of their first 6 weeks" in html  # only the weekly pair
    assert html.count("<svg viewBox") == 2 and html.count('stroke-dasharray="6 4"') >= 2
    assert "<script" not in html and "style=" not in html  # the CSP allows neither
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "Research export" not in html  # staff only
    assert ("nurse@clinic.example.org", "engagement.read", "programme") in browser.events()


def test_the_curve_is_drawn_against_the_trials_line(
    browser: Browser, history: History, clock: FakeClock
) -> None:
    programme(history, clock)
    browser.sign_in("nurse")
    html = browser.http.get(PAGE).text
    charts = re.findall(r"<svg viewBox.*?</svg>", html, re.S)
    calls = charts[0]
    lines = re.findall(r'<polyline points="([^"]+)"', calls)
    assert len(lines) == 2  # the trials' (dashed) and the programme's
    trials = [tuple(map(float, p.split(","))) for p in lines[0].split()]
    assert len(trials) == 4  # months 1-4 of a programme in its fourth month, falling
    assert all(y1 < y2 for (_, y1), (_, y2) in itertools.pairwise(trials))
    assert calls.count("<circle") == 4
    assert "Month 4: 0.33 calls so far" in calls  # one call among 3 pairs still in month 4: hollow
    ticks = re.findall(r'class="tick" text-anchor="end">([^<]+)<', calls)
    assert ticks == ["0", "1", "2", "3"]  # whole gridlines; the trials' 2.4 sets the top
    assert 'fill="#ffffff"' in calls


def test_a_cohort_is_chosen_from_the_list_and_a_bad_one_is_explained(
    browser: Browser, history: History, clock: FakeClock
) -> None:
    programme(history, clock)
    month = (clock() - 100 * DAY).strftime("%Y-%m")
    browser.sign_in("nurse")
    html = browser.http.get(PAGE).text
    assert f'<option value="{month}"' in html
    chosen = browser.http.get(PAGE, params={"cohort": month})
    assert chosen.status_code == 200 and f"pairs made in {month}" in chosen.text
    empty = browser.http.get(PAGE, params={"cohort": "2020-01"})
    assert empty.status_code == 200 and "No pairs were made in 2020-01" in empty.text
    for bad in ("2026-13", "soon", "<b>", "9999-12", "0000-01"):
        response = browser.http.get(PAGE, params={"cohort": bad})
        assert response.status_code == 400 and "Choose a month of pairing" in response.text
    events = browser.events()
    assert ("nurse@clinic.example.org", "engagement.read", f"cohort:{month}") in events


def test_an_empty_programme_says_so(browser: Browser) -> None:
    browser.sign_in("nurse")
    page = browser.http.get(PAGE)
    assert page.status_code == 200 and "No pairs yet" in page.text


def test_staff_download_the_research_zip_and_it_is_audited(
    app: FastAPI, browser: Browser, history: History, clock: FakeClock
) -> None:
    programme(history, clock)
    browser.sign_in("staff")
    page = browser.http.get(PAGE).text
    assert "Research export" in page
    token = csrf(page)

    def download(key: str) -> Any:
        return browser.http.post(f"{PAGE}/research.zip", data={"csrf_token": token, "key": key})

    response = download("evaluation key 2026")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="peerline-research.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        files = {n: archive.read(n).decode() for n in archive.namelist()}
    assert sorted(files) == ["data-dictionary.csv", "pair_weeks.csv", "participants.csv"]
    with app.state.sessionmaker() as db:
        expected = research.build(
            db, ids=research.ResearchIds("evaluation key 2026"), now=clock(), engaged_when="accepted"
        )
    assert files == expected.files  # the same key as the command line's gives the same ids
    assert browser.count("export.research") == 1
    unkeyed = download("")
    with zipfile.ZipFile(io.BytesIO(unkeyed.content)) as archive:
        other = list(csv.DictReader(io.StringIO(archive.read("participants.csv").decode())))
    mine = list(csv.DictReader(io.StringIO(files["participants.csv"])))
    assert not {r["participant"] for r in other} & {r["participant"] for r in mine}
    assert download("k" * 201).status_code == 400
    assert browser.count("export.research") == 2


def test_the_zip_needs_the_staff_role_and_the_form_token(browser: Browser, history: History) -> None:
    browser.sign_in("nurse")
    token = csrf(browser.http.get(PAGE).text)
    refused = browser.http.post(f"{PAGE}/research.zip", data={"csrf_token": token})
    assert refused.status_code == 403 and "application/zip" not in refused.headers["content-type"]
    browser.sign_in("staff")
    assert browser.http.post(f"{PAGE}/research.zip", data={"csrf_token": "forged"}).status_code == 403
    assert browser.count("export.research") == 0


def test_the_page_reads_fine_for_a_programme_past_its_sixth_month(
    browser: Browser, history: History, clock: FakeClock
) -> None:
    start = clock() - 400 * DAY
    pair = history.pair(start)
    for day in range(0, 400, 9):
        history.call(pair, start + day * DAY + timedelta(hours=1), seconds=200)
    browser.sign_in("nurse")
    html = browser.http.get(PAGE).text
    calls = re.findall(r"<svg viewBox.*?</svg>", html, re.S)[0]
    assert calls.count("<circle") == 14  # month 14 is under way
    assert len(re.findall(r'class="tick" text-anchor="middle">\d+<', calls)) <= 13  # labels thinned
    assert datetime.now(UTC)  # the page's figures need no wall clock: the app's clock is the test's
