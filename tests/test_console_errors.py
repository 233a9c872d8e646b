"""Console error pages keep the menu for whoever is signed in, the API keeps its JSON, and the
site has a favicon (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.services import stats
from tests.conftest import Staff
from tests.test_console_audit import Console

MENU = '<nav aria-label="Main">'


@pytest.fixture
def nurse(app: FastAPI, staff: Staff) -> Iterator[Console]:
    c = Console(app)
    with c.http:
        c.sign_in("nurse")
        yield c


def test_an_unknown_console_page_is_a_page_with_the_menu(nurse: Console) -> None:
    answer = nurse.http.get("/console/no-such-page")
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "Page not found" in answer.text and MENU in answer.text
    assert "nurse@clinic.example.org" in answer.text  # whose menu it is


def test_a_missing_record_and_a_refused_role_keep_the_menu(nurse: Console) -> None:
    missing = nurse.http.get("/console/pairs/999")
    assert missing.status_code == 404 and "There is no pair 999" in missing.text and MENU in missing.text
    refused = nurse.http.get("/console/staff")
    assert refused.status_code == 403 and "This page is for" in refused.text and MENU in refused.text


def test_a_stale_form_and_an_address_that_cannot_be_read_keep_the_menu(nurse: Console) -> None:
    stale = nurse.http.post("/console/attention/1/clear", data={"csrf_token": "stale", "note": "x"})
    assert stale.status_code == 403 and "form has expired" in stale.text and MENU in stale.text
    unreadable = nurse.http.get("/console/pairs/not-a-number")
    assert unreadable.status_code == 422 and "This address is not right" in unreadable.text
    assert MENU in unreadable.text


def test_a_service_refusal_on_a_console_form_is_a_page_not_json(app: FastAPI, staff: Staff) -> None:
    c = Console(app)
    with c.http:
        c.sign_in("staff")
        answer = c.http.post("/console/pairs/999/notes", data={"csrf_token": c.csrf(), "notes": "x"})
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "Pair 999 does not exist." in answer.text and MENU in answer.text


def test_a_failure_is_a_page_with_the_menu_and_no_details(
    app: FastAPI, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr(stats, "programme_stats", broken)
    c = Console(app)
    c.http = TestClient(
        app, base_url="https://testserver", follow_redirects=False, raise_server_exceptions=False
    )
    with c.http:
        c.sign_in("nurse")
        answer = c.http.get("/console/")
    assert answer.status_code == 500 and "Something went wrong" in answer.text and MENU in answer.text
    assert "secret detail" not in answer.text


def test_someone_not_signed_in_gets_the_page_without_a_menu(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as http:
        answer = http.get("/console/no-such-page")
    assert answer.status_code == 404 and "Page not found" in answer.text
    assert MENU not in answer.text and 'href="/console/login"' in answer.text


def test_the_api_keeps_its_json_errors(client: TestClient, staff: Staff) -> None:
    assert client.get("/api/v1/nothing-here").json() == {"detail": "Not Found"}
    missing = client.get("/api/v1/pairs/999", headers=staff["nurse"])
    assert missing.status_code == 404 and missing.json() == {"detail": "pair 999 does not exist"}
    bad = client.get("/api/v1/pairs/abc", headers=staff["nurse"])
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "pair_id"]


def test_the_favicon_is_answered_and_linked_from_every_page(client: TestClient, nurse: Console) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg")
    assert client.get("/console/static/favicon.svg").status_code == 200
    assert '<link rel="icon" href="/console/static/favicon.svg"' in nurse.http.get("/console/pairs").text
