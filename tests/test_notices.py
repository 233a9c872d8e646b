"""The treatment notice as managed text: the API and the console, for admins only."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import ivr.flow as flow
from app.api.routes import notices as notice_routes
from app.console.pages import notices as notice_pages
from app.services import notices
from ivr import prompts
from ivr.flow import Line, Urls
from ivr.vocab import Language
from tests.conftest import Staff


@pytest.fixture(autouse=True)
def _wired(app: FastAPI) -> Iterator[None]:
    # until the lead wires them in app/api/routes/__init__.py and app/console/pages/__init__.py
    paths = {getattr(r, "path", "") for r in app.router.routes}
    if "/api/v1/notices" not in paths:
        app.include_router(notice_routes.router, prefix="/api/v1")
    if "/console/notices" not in paths:
        app.include_router(notice_pages.router)
    notices.forget()
    yield
    notices.forget()


def test_an_admin_drafts_and_activates_a_version_and_the_history_says_when(
    client: TestClient, staff: Staff
) -> None:
    admin = staff["admin"]
    draft = client.post(
        "/api/v1/notices",
        json={"version": "2027-01", "texts": {"en": "Ask your doctor first."}},
        headers=admin,
    )
    assert draft.status_code == 201 and draft.json()["missing_languages"] == ["es"]
    refused = client.post("/api/v1/notices/2027-01/activate", headers=admin)
    assert refused.status_code == 422 and "es" in refused.text

    full = {"en": "Ask your doctor first.", "es": "Pregunte primero a su médico."}
    assert (
        client.post("/api/v1/notices", json={"version": "2027-02", "texts": full}, headers=admin).status_code
        == 201
    )
    active = client.post("/api/v1/notices/2027-02/activate", headers=admin)
    assert active.status_code == 200 and active.json()["active"] is True
    assert client.post("/api/v1/notices/2027-02/activate", headers=admin).status_code == 409

    listed = client.get("/api/v1/notices", headers=admin).json()
    assert listed["active"] == "2027-02"
    assert [p["version"] for p in listed["history"]] == ["2027-02"] and listed["history"][0]["until"] is None
    bad = client.post("/api/v1/notices", json={"version": "x", "texts": {"fr": "Non."}}, headers=admin)
    assert bad.status_code == 422 and "en, es" in bad.text


@pytest.mark.parametrize("role", ["nurse", "staff", ""])
def test_only_admins_manage_the_notice(client: TestClient, staff: Staff, role: str) -> None:
    assert client.get("/api/v1/notices", headers=staff[role]).status_code in (401, 403)
    body = {"version": "v", "texts": {"en": "E", "es": "S"}}
    assert client.post("/api/v1/notices", json=body, headers=staff[role]).status_code in (401, 403)


def test_prompt_audio_is_linked_per_prompt_and_language_and_played_instead_of_the_voice(
    app: FastAPI, client: TestClient, staff: Staff
) -> None:
    admin = staff["admin"]
    url = "https://audio.example.org/hold-es.mp3"
    linked = client.put(
        "/api/v1/prompt-audio", json={"prompt": "hold", "language": "es", "url": url}, headers=admin
    )
    assert linked.status_code == 200, linked.text
    assert (
        client.put(
            "/api/v1/prompt-audio", json={"prompt": "nope", "language": "es", "url": url}, headers=admin
        ).status_code
        == 422
    )
    assert (
        client.put(
            "/api/v1/prompt-audio",
            json={"prompt": "hold", "language": "es", "url": "http://x"},
            headers=admin,
        ).status_code
        == 422
    )
    with app.state.sessionmaker() as db:
        audio = notices.in_force(db).audio
    line = Line(
        Urls("https://peerline.example.org"),
        "+18005550100",
        datetime.now(UTC),
        language=Language.ES,
        audio=audio,
    )
    held = str(flow.hold(line))
    assert f"<Play>{url}</Play>" in held and "<Say" not in held  # the recording, not the voice
    english = str(flow.hold(dataclasses.replace(line, language=Language.EN)))
    assert "<Play>" not in english and prompts.HOLD in english  # no English audio: the text is said
    assert client.delete("/api/v1/prompt-audio/hold/es", headers=admin).status_code == 204


def test_the_console_page_shows_versions_and_activates_only_complete_ones(app: FastAPI, staff: Staff) -> None:
    from tests.test_console_audit import Console, _csrf

    console = Console(app)
    console.sign_in("admin")
    shown = console.http.get("/console/notices")
    assert shown.status_code == 200 and "No version has been activated yet" in shown.text
    made = console.http.post(
        "/console/notices",
        data={"csrf_token": _csrf(shown.text), "version": "v1", "text_en": "E.", "text_es": ""},
    )
    assert made.status_code == 303
    page = console.http.get("/console/notices").text
    assert "Cannot be activated yet: missing es" in page
    refused = console.http.post("/console/notices/v1/activate", data={"csrf_token": _csrf(page)})
    assert refused.status_code == 400 and "missing: es" in refused.text
    console.http.post(
        "/console/notices",
        data={"csrf_token": _csrf(page), "version": "v2", "text_en": "E.", "text_es": "S."},
    )
    page = console.http.get("/console/notices").text
    assert (
        console.http.post("/console/notices/v2/activate", data={"csrf_token": _csrf(page)}).status_code == 303
    )
    after = console.http.get("/console/notices").text
    assert "(active)" in after and "now" in after
    console.sign_in("nurse")
