"""Schemathesis against the engagement operations: no 5xx, and every answer in its schema.

The whole API's fuzz test (test_api_schema_fuzz.py) covers these too once /api/v1
includes the engagement router; until then this one does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.db import make_engine
from app.main import create_app
from app.models import Base
from app.services import staff
from app.settings import Settings
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, SECRET, FakeClock
from tests.engagement_data import DAY, History, with_engagement_routes

ENGAGEMENT_PATHS = {"/api/v1/stats/engagement", "/api/v1/pairs/{pair_id}/engagement"}


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = with_engagement_routes(
        create_app(
            Settings(
                database_url=url,
                public_base_url=PUBLIC_BASE_URL,
                twilio_auth_token=AUTH_TOKEN,
                secret_key=SECRET,
                scheduler_enabled=False,
                programme_timezone="Pacific/Kiritimati",  # +14:00: month bounds far from UTC's
            )
        )
    )
    clock = FakeClock(datetime(2026, 11, 17, 20, tzinfo=UTC))
    app.state.context.clock = clock
    history = History(app)
    for months_ago in (1, 2, 7):
        pair = history.pair(clock() - months_ago * 30 * DAY)
        history.call(pair, clock() - (months_ago * 30 - 2) * DAY, seconds=300)
        history.call(pair, clock() - (months_ago * 30 - 9) * DAY, by="b")
    with app.state.sessionmaker() as db:
        admin = staff.create_user(
            db, email="admin@clinic.example.org", password="admin-password-long", role="admin", now=clock()
        )
        db.commit()
        app.state.fuzz_token = app.state.tokens.issue(admin, clock())
    yield app
    app.state.engine.dispose()


def test_the_engagement_api_never_answers_5xx_and_keeps_its_schema(fuzzed_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    headers = {"Authorization": f"Bearer {fuzzed_app.state.fuzz_token}"}
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path not in ENGAGEMENT_PATHS:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        exercise()
        tested += 1
    assert tested == 2


@pytest.mark.parametrize("cohort", ["0000-01", "0001-01", "9999-12", "2026-11", "1970-01"])
def test_calendar_edges_are_a_422_or_an_answer_never_a_500(fuzzed_app: FastAPI, cohort: str) -> None:
    from fastapi.testclient import TestClient

    with TestClient(fuzzed_app) as client:
        response = client.get(
            "/api/v1/stats/engagement",
            params={"cohort": cohort},
            headers={"Authorization": f"Bearer {fuzzed_app.state.fuzz_token}"},
        )
    assert response.status_code in (200, 422), response.text
