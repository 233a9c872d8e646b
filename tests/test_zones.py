"""One rule for a participant's zone, wherever it is typed: a place, not a fixed offset or an
old alias; the API, the console and the command line (test_cli_polish.py) refuse alike."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.models import Participant
from app.services.zones import is_place, suggestion
from tests.conftest import ANA, BEA, Programme, Staff
from tests.test_console_audit import Console


def test_places_are_zones_and_offsets_and_aliases_are_not() -> None:
    assert all(is_place(z) for z in ("America/New_York", "America/Argentina/Buenos_Aires", "UTC"))
    assert not any(
        is_place(z) for z in ("EST", "EST5EDT", "Etc/GMT+5", "US/Eastern", "Canada/Pacific", "Japan")
    )
    assert suggestion("Etc/GMT+6") == "America/Chicago"  # the sign in Etc/ names is reversed
    assert suggestion("Japan") == "Asia/Tokyo" and suggestion("Zulu") == "UTC"


def test_the_api_refuses_est_naming_the_field_and_a_place(client: TestClient, staff: Staff) -> None:
    answer = client.post(
        "/api/v1/participants",
        json={"name": "Ana", "phone": ANA, "timezone": "EST"},
        headers=staff["staff"],
    )
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "timezone"] and "America/New_York" in problem["msg"]
    assert "daylight saving" in problem["msg"]


def test_an_edit_keeps_a_zone_stored_before_the_rule_but_refuses_a_new_alias(
    client: TestClient, staff: Staff, programme: Programme
) -> None:
    ana = programme.enrol("Ana", ANA)
    with programme.session() as db:
        person = db.get(Participant, ana)
        assert person is not None
        person.timezone = "US/Eastern"  # as an older release let it be stored
        db.commit()
    renamed = client.patch(
        f"/api/v1/participants/{ana}",
        json={"name": "Ana L.", "timezone": "US/Eastern"},
        headers=staff["staff"],
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ana L."
    moved = client.patch(
        f"/api/v1/participants/{ana}", json={"timezone": "US/Pacific"}, headers=staff["staff"]
    )
    assert moved.status_code == 422 and "America/Los_Angeles" in moved.text


def test_the_console_offers_only_places_and_says_which_one_to_use(
    client: TestClient, staff: Staff, programme: Programme
) -> None:
    console = Console(client.app)  # type: ignore[arg-type]
    with console.http:
        console.sign_in("staff")
        form = console.http.get("/console/participants/new").text
        assert '<option value="America/New_York"' in form
        assert '<option value="EST"' not in form and '<option value="US/Eastern"' not in form
        refused = console.http.post(
            "/console/participants",
            data={"csrf_token": console.csrf(), "name": "Bea", "phone": BEA, "timezone": "Etc/GMT+5"},
        )
    assert refused.status_code == 400
    assert "Time zone &#39;Etc/GMT+5&#39; is a fixed offset" in refused.text
    assert "e.g. America/New_York" in refused.text
