"""A nurse calls a participant back through Peerline (issue 14): two legs from the programme's
number, the nurse's phone first; neither number in any TwiML or answer; not a peer contact."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.simulator.telephone import Telephone
from app.twilio import outreach as outreach_routes
from tests.conftest import ANA, BEA, PROGRAMME_NUMBER, FakeClock, Programme, Staff

NURSE_PHONE = "+16175550107"


@pytest.fixture
def wired(app: FastAPI) -> FastAPI:
    # the lead adds this include to app/main.py; until then the test wires it
    if not any(getattr(r, "path", "").startswith("/twilio/outreach") for r in app.router.routes):
        app.include_router(outreach_routes.router)
    return app


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_me_and_my_phone_are_masked(wired: FastAPI, client: TestClient, staff: Staff) -> None:
    me = client.get("/api/v1/me", headers=staff["nurse"]).json()
    assert me == {
        "email": "nurse@clinic.example.org",
        "role": "nurse",
        "phone_set": False,
        "phone_last2": None,
        "digest_hour": None,
    }
    put = client.put("/api/v1/me/phone", json={"phone": "(617) 555-0107"}, headers=staff["nurse"])
    assert put.status_code == 200 and NURSE_PHONE not in put.text and put.json()["phone"].endswith("07")
    me = client.get("/api/v1/me", headers=staff["nurse"]).json()
    assert me["phone_set"] is True and me["phone_last2"] == "07"


def test_without_a_phone_the_nurse_is_told_to_add_one(
    wired: FastAPI, client: TestClient, staff: Staff, programme: Programme
) -> None:
    ana = programme.enrol("Ana", ANA)
    refused = client.post(f"/api/v1/participants/{ana}/call", headers=staff["nurse"])
    assert refused.status_code == 409 and "phone" in refused.json()["detail"]


def test_a_nurse_calls_a_participant_back_nurse_first_then_the_participant(
    wired: FastAPI,
    client: TestClient,
    staff: Staff,
    programme: Programme,
    phone: Telephone,
    clock: FakeClock,
) -> None:
    ana = programme.enrol("Ana Lopez", ANA)
    bea = programme.enrol("Bea", BEA)
    pair = programme.pair(ana, bea)
    client.put("/api/v1/me/phone", json={"phone": NURSE_PHONE}, headers=staff["nurse"])
    started = client.post(f"/api/v1/participants/{ana}/call", headers=staff["nurse"])
    assert started.status_code == 202, started.text
    call_id = started.json()["call_id"]

    (to_nurse,) = phone.fake.calls
    assert to_nurse.to == NURSE_PHONE and to_nurse.from_ == PROGRAMME_NUMBER
    assert NURSE_PHONE not in to_nurse.url and ANA not in to_nurse.url
    base = {
        "CallSid": to_nurse.sid,
        "AccountSid": "AC" + "0" * 32,
        "From": PROGRAMME_NUMBER,
        "To": NURSE_PHONE,
    }
    heard = phone.post(to_nurse.url, base)
    assert heard.status_code == 200 and "connecting you to Ana. Press 1 to connect." in heard.text
    assert ANA not in heard.text and "Lopez" not in heard.text
    answer_url = to_nurse.url.replace("/staff?", "/staff-answer?")
    bridged = phone.post(answer_url, {**base, "Digits": "1"})
    assert "<Conference" in bridged.text and ANA not in bridged.text

    _wait_for(lambda: len(phone.fake.calls) == 2)
    to_ana = phone.fake.calls[1]
    assert to_ana.to == ANA and to_ana.from_ == PROGRAMME_NUMBER and NURSE_PHONE not in to_ana.url
    ana_base = {"CallSid": to_ana.sid, "AccountSid": base["AccountSid"], "From": PROGRAMME_NUMBER, "To": ANA}
    intro = phone.post(to_ana.url, ana_base)
    assert "This is your care team calling through Peerline." in intro.text
    assert NURSE_PHONE not in intro.text and "<Conference" in intro.text

    status = to_ana.status_callback or ""
    phone.post(status, {**ana_base, "CallStatus": "in-progress"})
    phone.post(status, {**ana_base, "CallStatus": "completed", "CallDuration": "190"})
    phone.post(to_nurse.status_callback or "", {**base, "CallStatus": "completed", "CallDuration": "200"})

    (item,) = [
        c for c in client.get("/api/v1/calls", headers=staff["nurse"]).json()["items"] if c["id"] == call_id
    ]
    assert item["kind"] == "outreach" and item["initiator_id"] is None
    assert item["staff_initiator"] == "nurse@clinic.example.org" and item["pair_id"] == pair
    assert item["is_contact"] is False and item["label"] == "talked 3 min 10 s"
    assert client.get(f"/api/v1/pairs/{pair}", headers=staff["nurse"]).json()["last_contact_at"] is None


def test_quiet_hours_are_honoured_unless_overridden_with_a_reason(
    wired: FastAPI, client: TestClient, staff: Staff, programme: Programme, phone: Telephone
) -> None:
    # now is 15:00 in Boston: quiet hours that cover it
    ana = programme.enrol("Ana", ANA, quiet="14:00-16:00")
    client.put("/api/v1/me/phone", json={"phone": NURSE_PHONE}, headers=staff["nurse"])
    refused = client.post(f"/api/v1/participants/{ana}/call", headers=staff["nurse"])
    assert refused.status_code == 409 and "quiet hours" in refused.json()["detail"]
    assert phone.fake.calls == []
    ok = client.post(
        f"/api/v1/participants/{ana}/call",
        json={"quiet_hours_reason": "she asked us to call at 3"},
        headers=staff["nurse"],
    )
    assert ok.status_code == 202
    actions = [e["action"] for e in client.get("/api/v1/audit", headers=staff["admin"]).json()["items"]]
    assert "outreach.quiet_hours_override" in actions


def test_the_participant_is_rung_only_once_the_nurses_key_press_is_stored() -> None:
    # in a batch (app/deadline.py) the step's own commit only flushes into the batch's
    # transaction, which may still be given up: the ring waits for the real commit
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.deadline import Guard
    from app.twilio.dialer import Dialer
    from app.twilio.webhooks import AfterCommit
    from ivr import outreach as steps

    rung: list[int] = []

    class Ringer:
        def ring(self, call_id: int) -> None:
            rung.append(call_id)

    class NoDialer(Dialer):
        def submit(self, requests: object) -> None:
            raise AssertionError("no REST request is expected")

    after = AfterCommit(NoDialer.__new__(NoDialer))
    with Session(create_engine("sqlite://")) as db:
        response = outreach_routes._voice(
            db,
            Guard(),
            lambda db: (steps.staff_pressed("1", "room-1", known=True), 7),
            Ringer(),  # type: ignore[arg-type]
            after,
        )

    assert response.status_code == 200
    assert rung == []
    after.release()
    assert rung == [7]
