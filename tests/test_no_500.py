"""No 500 on any input: the inputs an adversarial review found (NUL bytes, dates that leave the
calendar once in UTC, ids no row can have, over-long text), each answered with a 4xx naming the
field, on the API and the console, on both databases; and nothing of them is stored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.models import AttentionFlag, Pair, Participant, StaffUser
from tests.conftest import Programme, Staff

HUGE = "99999999999999999999"
NUL = "\x00"
Pairing = tuple[int, int, int]


@pytest.fixture
def flag(programme: Programme, ana_and_bea: Pairing) -> int:
    at = datetime(2026, 11, 10, tzinfo=UTC)
    with programme.session() as s:
        row = AttentionFlag(pair_id=ana_and_bea[2], period_start=at, reason="quiet", raised_at=at)
        s.add(row)
        s.commit()
        return row.id


def names_the_field(response: Any, field: str) -> bool:
    detail = response.json()["detail"]
    return isinstance(detail, list) and any(field in e["loc"][1:] for e in detail)


# ---------------------------------------------------------------- the API


API_QUERIES = [
    ("nurse", "/api/v1/calls?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("nurse", "/api/v1/calls?until=9999-12-31T23:59:59-12:00", "until"),
    ("nurse", "/api/v1/calls?since=0001-01-01T00:00:00%2B14:00&until=9999-12-31T23:59:59-12:00", "since"),
    ("nurse", "/api/v1/participants?search=%00", "search"),
    ("nurse", "/api/v1/participants?search=Ana%00", "search"),
    ("nurse", "/api/v1/participants?status=active%00", "status"),
    ("nurse", "/api/v1/pairs?active=%00", "active"),
    ("nurse", "/api/v1/calls?outcome=%00", "outcome"),
    ("nurse", "/api/v1/calls?cursor=%00", "cursor"),
    ("nurse", "/api/v1/calls?pair_id=" + HUGE, "pair_id"),
    ("nurse", "/api/v1/calls?limit=" + HUGE, "limit"),
    ("nurse", "/api/v1/participants/" + HUGE, "participant_id"),
    ("nurse", "/api/v1/pairs/2147483648", "pair_id"),
    ("nurse", "/api/v1/messages/-1/recording", "message_id"),
    ("nurse", "/api/v1/participants?%00=1", ""),
    ("admin", "/api/v1/audit?actor=%00", "actor"),
    ("admin", "/api/v1/audit?action=auth.sign_in%00", "action"),
    ("admin", "/api/v1/audit?actor=" + "a" * 300, "actor"),
]


@pytest.mark.parametrize(("role", "path", "field"), API_QUERIES, ids=[p for _, p, _ in API_QUERIES])
def test_bad_query_or_path_values_are_a_422_naming_the_parameter(
    client: TestClient, staff: Staff, ana_and_bea: Pairing, role: str, path: str, field: str
) -> None:
    response = client.get(path, headers=staff[role])
    assert response.status_code == 422, response.text
    if field:
        assert names_the_field(response, field), response.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/calls?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z",
        "/api/v1/calls?since=0001-01-01T00:00:00-14:00",  # still year 1 in UTC
        "/api/v1/calls?until=9999-12-31T23:59:59%2B12:00",
        "/api/v1/calls?since=2026-11-01T00:00:00",  # no offset: UTC
    ],
)
def test_the_extremes_that_stay_in_the_calendar_are_answered(
    client: TestClient, staff: Staff, path: str
) -> None:
    assert client.get(path, headers=staff["nurse"]).status_code == 200


API_BODIES: list[tuple[str, str, str, dict[str, Any], str]] = [
    (
        "staff",
        "POST",
        "/api/v1/participants",
        {"name": "A" + NUL, "phone": "+16175550105", "timezone": "UTC"},
        "name",
    ),
    (
        "staff",
        "POST",
        "/api/v1/participants",
        {"name": "A" * 5000, "phone": "+16175550105", "timezone": "UTC"},
        "name",
    ),
    (
        "staff",
        "POST",
        "/api/v1/participants",
        {"name": "Eve", "phone": "+1617555" + NUL, "timezone": "UTC"},
        "phone",
    ),
    (
        "staff",
        "POST",
        "/api/v1/participants",
        {"name": "Eve", "phone": "+16175550105", "timezone": "UTC" + NUL},
        "timezone",
    ),
    (
        "staff",
        "POST",
        "/api/v1/participants",
        {"name": "Eve", "phone": "+16175550105", "timezone": "UTC", "language": "xx"},
        "language",
    ),
    ("staff", "PATCH", "/api/v1/participants/1", {"name": "Ana" + NUL}, "name"),
    ("staff", "PATCH", "/api/v1/participants/1", {"name": "A" * 5000}, "name"),
    ("staff", "PATCH", "/api/v1/participants/1", {"quiet_hours": "21:00" + NUL}, "quiet_hours"),
    ("staff", "PATCH", "/api/v1/participants/1", {"language": "e" + NUL}, "language"),
    ("staff", "PATCH", "/api/v1/participants/1", {"language": "de"}, "language"),
    ("staff", "POST", "/api/v1/pairs", {"participant_ids": [3, 4], "notes": NUL}, "notes"),
    ("staff", "POST", "/api/v1/pairs", {"participant_ids": [3, 2**63]}, "participant_ids"),
    ("staff", "POST", "/api/v1/attention/1/clear", {"note": "called" + NUL}, "note"),
    ("staff", "POST", "/api/v1/attention/1/clear", {"note": "n" * 2001}, "note"),
    (
        "admin",
        "POST",
        "/api/v1/users",
        {"email": "a" + NUL + "@x.org", "password": "a long pass phrase", "role": "nurse"},
        "email",
    ),
    (
        "admin",
        "POST",
        "/api/v1/users",
        {"email": "a@x.org", "password": "a long pass" + NUL + "phrase", "role": "nurse"},
        "password",
    ),
    (
        "nurse",
        "POST",
        "/api/v1/auth/password",
        {"current_password": NUL, "new_password": "a long pass phrase"},
        "current_password",
    ),
]


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "field"),
    API_BODIES,
    ids=[f"{m} {p} {f}" for _, m, p, _, f in API_BODIES],
)
def test_bad_body_values_are_a_422_naming_the_field_and_nothing_is_stored(
    client: TestClient,
    staff: Staff,
    programme: Programme,
    ana_and_bea: Pairing,
    flag: int,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    programme.enrol("Cal", "+16175550103")
    programme.enrol("Dee", "+16175550104")
    before = [(p.name, p.language, p.quiet_hours) for p in programme.rows(Participant)]
    response = client.request(method, path, json=body, headers=staff[role])
    assert response.status_code == 422, response.text
    assert names_the_field(response, field), response.text
    assert [(p.name, p.language, p.quiet_hours) for p in programme.rows(Participant)] == before
    assert len(programme.rows(Pair)) == 1 and len(programme.rows(StaffUser)) == 3
    assert programme.get(AttentionFlag, flag).cleared_at is None


def test_a_nul_in_the_sign_in_form_is_a_422_naming_the_username(client: TestClient, staff: Staff) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "nurse" + NUL, "password": "whatever it is"}
    )
    assert response.status_code == 422 and names_the_field(response, "username")
    # a NUL in the password is only a wrong password: it is hashed, never stored or compared as text
    wrong = client.post(
        "/api/v1/auth/token", data={"username": "nurse@clinic.example.org", "password": NUL * 12}
    )
    assert wrong.status_code == 401


# ---------------------------------------------------------------- the console


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def console(app: FastAPI, staff: Staff) -> Iterator[tuple[TestClient, str]]:
    """An admin signed in (every page is open to them); their form token."""
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as browser:
        form = browser.get("/console/login").text
        token = CSRF.search(form)
        assert token is not None
        signed_in = browser.post(
            "/console/login",
            data={
                "email": "admin@clinic.example.org",
                "password": "admin-password-long",
                "csrf_token": token[1],
            },
        )
        assert signed_in.status_code == 303
        page = CSRF.search(browser.get("/console/").text)
        assert page is not None
        yield browser, page[1]


def console_routes_with_ids() -> list[tuple[str, str]]:
    from app.console import pages

    areas = [getattr(pages, name) for name in dir(pages) if hasattr(getattr(pages, name), "router")]
    return sorted(
        (method, route.path)
        for area in areas
        for route in area.router.routes
        # ids only: a notice is named by its version, which is text
        if isinstance(route, APIRoute) and re.search(r"\{\w*id\}", route.path)
        for method in route.methods
    )


def test_every_console_route_refuses_an_id_no_row_can_have(
    app: FastAPI, console: tuple[TestClient, str], ana_and_bea: Pairing
) -> None:
    browser, token = console
    routes = console_routes_with_ids()
    assert len(routes) >= 11
    for method, template in routes:
        for bad in (HUGE, "2147483648", "0", "-1"):
            path = re.sub(r"\{[^}]+\}", bad, template)
            response = browser.request(method, path, data={"csrf_token": token} if method == "POST" else None)
            assert response.status_code == 422, (method, path, response.status_code)


CONSOLE_QUERIES = [
    "/console/participants?q=%00",
    "/console/pairs?q=Ana%00",
    "/console/audit?actor=%00",
    "/console/login?next=%00",
]


@pytest.mark.parametrize("path", CONSOLE_QUERIES)
def test_a_nul_in_a_console_query_is_a_422_page_naming_it(console: tuple[TestClient, str], path: str) -> None:
    browser, _ = console
    response = browser.get(path)
    assert response.status_code == 422 and "cannot be stored" in response.text
    name = path.split("?")[1].split("=")[0]
    assert f"“{name}”" in response.text


def test_console_forms_refuse_nul_and_over_long_text_and_store_nothing(
    console: tuple[TestClient, str], programme: Programme, ana_and_bea: Pairing, flag: int
) -> None:
    browser, token = console
    ana, _, pair = ana_and_bea

    def post(path: str, **fields: str) -> Any:
        return browser.post(path, data={"csrf_token": token, **fields})

    edit = {"name": "Ana", "timezone": "America/New_York", "quiet_hours": "", "language": "en"}
    long_name = post(f"/console/participants/{ana}", **{**edit, "name": "A" * 5000})
    assert long_name.status_code == 400 and "At most 120 characters." in long_name.text
    bad_language = post(f"/console/participants/{ana}", **{**edit, "language": "x" * 5000})
    assert bad_language.status_code == 400 and "Choose a language from the list" in bad_language.text
    for path, fields in (
        (f"/console/participants/{ana}", {**edit, "name": "Ana" + NUL}),
        ("/console/participants", {"name": "E" + NUL, "phone": "+16175550105", "timezone": "UTC"}),
        (f"/console/pairs/{pair}/notes", {"notes": "called" + NUL}),
        (f"/console/attention/{flag}/clear", {"note": NUL}),
        (
            "/console/staff",
            {"email": "x" + NUL + "@y.org", "password": "a long pass phrase", "role": "nurse"},
        ),
        (
            "/console/account/password",
            {"current_password": NUL, "new_password": "x", "new_password_again": "x"},
        ),
    ):
        refused = post(path, **fields)
        assert refused.status_code == 422 and "cannot be stored" in refused.text, (path, refused.status_code)
    enrol = post("/console/participants", name="E" * 5000, phone="+16175550105", timezone="UTC")
    assert enrol.status_code == 400 and "At most 120 characters." in enrol.text
    notes = post(f"/console/pairs/{pair}/notes", notes="n" * 5001)
    assert notes.status_code == 422 and "at most 5,000 characters" in notes.text
    note = post(f"/console/attention/{flag}/clear", note="n" * 2001)
    assert note.status_code == 422 and "at most 2,000 characters" in note.text
    signed_in_next = post("/console/login", email="a@b.org", password="p", next="/console/\r\nX-Evil: 1")
    assert signed_in_next.status_code < 500

    assert [p.name for p in programme.rows(Participant)] == ["Ana", "Bea"]
    assert programme.get(Pair, pair).notes == ""
    assert programme.get(AttentionFlag, flag).cleared_at is None
    assert len(programme.rows(StaffUser)) == 3
