"""The admin API as nurses, staff and integrations use it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.pagination import encode_cursor
from app.models import AuditEvent, Reminder
from app.simulator.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import ANA, BEA, CAL, FakeClock, Programme, ServerThread, Staff

Pairing = tuple[int, int, int]


def sign_in(client: TestClient, email: str, password: str) -> Any:
    return client.post("/api/v1/auth/token", data={"username": email, "password": password})


# ---------------------------------------------------------------- sign-in


def test_sign_in_gives_a_bearer_token_that_works(
    client: TestClient, staff: Staff, programme: Programme
) -> None:
    response = sign_in(client, "Nurse@Clinic.example.org", "nurse-password-long")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 1800
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/api/v1/pairs", headers=headers).status_code == 200
    actions = [(e.actor, e.action) for e in programme.rows(AuditEvent)]
    assert ("nurse@clinic.example.org", "auth.sign_in") in actions


def test_ten_wrong_passwords_lock_the_account_for_fifteen_minutes(
    client: TestClient, staff: Staff, programme: Programme, clock: FakeClock
) -> None:
    for _ in range(10):
        assert sign_in(client, "staff@clinic.example.org", "wrong password!").status_code == 401
        clock.advance(seconds=30)
    locked = sign_in(client, "staff@clinic.example.org", "staff-password-long")
    assert locked.status_code == 429
    assert "too many wrong passwords" in locked.json()["detail"]
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    # another account is not affected
    assert sign_in(client, "nurse@clinic.example.org", "nurse-password-long").status_code == 200
    clock.advance(minutes=15)
    assert sign_in(client, "staff@clinic.example.org", "staff-password-long").status_code == 200
    failed = [e for e in programme.rows(AuditEvent) if e.action == "auth.sign_in_failed"]
    # every failure counted, two a minute in one row each, the locked attempt in a row of its own
    assert sum(e.count for e in failed) == 11 and all(e.client_ip for e in failed)
    assert [(e.target, e.count) for e in failed] == [("wrong email or password", 2)] * 5 + [
        ("locked: too many wrong passwords for this account", 1)
    ]


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(client: TestClient, staff: Staff) -> None:
    unknown = sign_in(client, "nobody@clinic.example.org", "whatever-password")
    wrong = sign_in(client, "nurse@clinic.example.org", "whatever-password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == {"detail": "wrong email or password"}


# ---------------------------------------------------------------- participants


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "phone": "12345", "timezone": "America/New_York"}, "phone"),
        ({"name": "X", "phone": "+16175550109", "timezone": "Mars/Base"}, "timezone"),
        ({"name": "X", "phone": "+16175550109", "timezone": "UTC", "quiet_hours": "late"}, "quiet_hours"),
        ({"name": "", "phone": "+16175550109", "timezone": "UTC"}, "name"),
        ({"phone": "+16175550109", "timezone": "UTC"}, "name"),
    ],
)
def test_invalid_participants_are_refused_naming_the_field(
    client: TestClient, staff: Staff, body: dict[str, str], field: str
) -> None:
    response = client.post("/api/v1/participants", json=body, headers=staff["staff"])
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


def test_enrolling_a_number_twice_is_a_conflict(client: TestClient, staff: Staff) -> None:
    body = {
        "name": "Ana",
        "phone": "(617) 555-0101",
        "timezone": "America/New_York",
        "quiet_hours": "21:00-9:00",
    }
    created = client.post("/api/v1/participants", json=body, headers=staff["staff"])
    assert created.status_code == 201
    assert created.json()["phone"] == ANA and created.json()["quiet_hours"] == "21:00-09:00"
    again = client.post("/api/v1/participants", json={**body, "phone": ANA}, headers=staff["staff"])
    assert again.status_code == 409 and "already enrolled" in again.json()["detail"]


def test_editing_quiet_hours_and_time_zone(client: TestClient, staff: Staff, ana_and_bea: Pairing) -> None:
    response = client.patch(
        "/api/v1/participants/1",
        json={"quiet_hours": "22:00-07:30", "timezone": "Europe/Berlin"},
        headers=staff["staff"],
    )
    assert response.status_code == 200
    assert (response.json()["quiet_hours"], response.json()["timezone"]) == ("22:00-07:30", "Europe/Berlin")
    cleared = client.patch("/api/v1/participants/1", json={"quiet_hours": ""}, headers=staff["staff"])
    assert cleared.json()["quiet_hours"] is None


def test_unknown_ids_are_404(client: TestClient, staff: Staff) -> None:
    for path in ("/api/v1/participants/99", "/api/v1/pairs/99", "/api/v1/pairs/99/stats"):
        response = client.get(path, headers=staff["admin"])
        assert response.status_code == 404 and "does not exist" in response.json()["detail"]
    assert client.post("/api/v1/messages/99/handle", headers=staff["nurse"]).status_code == 404
    assert client.post("/api/v1/attention/99/clear", json={}, headers=staff["staff"]).status_code == 404


# ---------------------------------------------------------------- removal on request


def test_removal_erases_the_number_and_keeps_the_call_history(
    client: TestClient, staff: Staff, phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, _, pair_id = ana_and_bea
    phone.call(ANA, Scripted(talk_seconds=200), Scripted(["1"]))
    with programme.session() as s:
        from datetime import UTC, datetime

        s.add(
            Reminder(
                participant_id=ana_id,
                pair_id=pair_id,
                period_start=datetime(2026, 11, 20, tzinfo=UTC),
                state="pending",
                attempts=0,
                next_attempt_at=datetime(2026, 11, 20, tzinfo=UTC),
                created_at=datetime(2026, 11, 17, tzinfo=UTC),
                updated_at=datetime(2026, 11, 17, tzinfo=UTC),
            )
        )
        s.commit()

    removed = client.delete(f"/api/v1/participants/{ana_id}", headers=staff["staff"])

    assert removed.status_code == 200
    assert (removed.json()["status"], removed.json()["phone"], removed.json()["pair_id"]) == (
        "withdrawn",
        None,
        None,
    )
    assert (
        client.get(f"/api/v1/participants/{ana_id}", headers=staff["staff"]).json()["status"] == "withdrawn"
    )
    assert client.get(f"/api/v1/pairs/{pair_id}", headers=staff["staff"]).json()["ended_at"] is not None
    assert {r.state for r in programme.rows(Reminder)} == {"cancelled"}
    calls = client.get(f"/api/v1/calls?participant_id={ana_id}", headers=staff["staff"]).json()["items"]
    assert len(calls) == 1 and calls[0]["is_contact"]

    caller = Scripted(["6175550101#"])
    phone.call(ANA, caller)
    assert caller.heard[:2] == [prompts.GREETING, prompts.ASK_HOME_NUMBER]
    assert prompts.NUMBER_NOT_FOUND in caller.text

    again = client.post(
        "/api/v1/participants", json={"name": "Ana", "phone": ANA, "timezone": "UTC"}, headers=staff["staff"]
    )
    assert again.status_code == 201 and again.json()["id"] != ana_id
    actions = [e.action for e in programme.rows(AuditEvent)]
    assert "participant.delete" in actions


# ---------------------------------------------------------------- pairs


def test_pairing_conflicts_and_re_pairing_keeps_history(
    client: TestClient, staff: Staff, phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, _, pair_id = ana_and_bea
    cal_id = programme.enrol("Cal", CAL)
    phone.call(ANA, Scripted(talk_seconds=100), Scripted(["1"]))
    busy = client.post("/api/v1/pairs", json={"participant_ids": [ana_id, cal_id]}, headers=staff["staff"])
    assert busy.status_code == 409 and "already in pair" in busy.json()["detail"]
    twice = client.post("/api/v1/pairs", json={"participant_ids": [cal_id, cal_id]}, headers=staff["staff"])
    assert twice.status_code == 422

    assert client.post(f"/api/v1/pairs/{pair_id}/end", headers=staff["staff"]).status_code == 200
    new = client.post("/api/v1/pairs", json={"participant_ids": [ana_id, cal_id]}, headers=staff["staff"])
    assert new.status_code == 201 and new.json()["participant_ids"] == [ana_id, cal_id]
    history = client.get(f"/api/v1/calls?participant_id={ana_id}", headers=staff["nurse"]).json()["items"]
    assert [c["pair_id"] for c in history] == [pair_id]
    listed = client.get(f"/api/v1/pairs?participant_id={ana_id}", headers=staff["nurse"]).json()["items"]
    assert [p["id"] for p in listed] == [new.json()["id"], pair_id]


def test_a_pair_shows_its_last_contact_and_calls_this_period(
    client: TestClient, staff: Staff, phone: Telephone, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    phone.call(ANA, Scripted(talk_seconds=100), Scripted(["1"]))
    clock.advance(hours=1)
    phone.call(BEA, Scripted(), Scripted(answers=False))
    pair = client.get("/api/v1/pairs/1", headers=staff["nurse"]).json()
    assert pair.get("calls_this_period") == 2, pair
    assert pair["last_contact_at"] == "2026-11-17T20:00:00Z"
    stats = client.get("/api/v1/pairs/1/stats", headers=staff["nurse"]).json()
    assert stats["contacts"] == 1 and stats["weeks_with_contact"] == 1
    assert stats["initiator_share"] == {"1": 1.0, "2": 0.0}
    programme_stats = client.get("/api/v1/stats", headers=staff["nurse"]).json()
    assert programme_stats["pairs_with_contact_this_period"] == 1 and programme_stats["contacts"] == 1


# ---------------------------------------------------------------- calls and pagination


def _make_calls(phone: Telephone, clock: FakeClock, n: int) -> None:
    for i in range(n):
        phone.post("/twilio/voice", {"CallSid": f"CA{i:032d}", "From": ANA if i % 2 else BEA})
        clock.advance(minutes=1)


def test_calls_page_newest_first_and_stay_stable_while_calls_come_in(
    client: TestClient, staff: Staff, phone: Telephone, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    _make_calls(phone, clock, 120)
    seen: list[int] = []
    first = client.get("/api/v1/calls?limit=50", headers=staff["nurse"]).json()
    seen += [c["id"] for c in first["items"]]
    _make_calls(phone, clock, 5)  # new calls arrive between pages
    second = client.get(
        f"/api/v1/calls?limit=50&cursor={first['next_cursor']}", headers=staff["nurse"]
    ).json()
    seen += [c["id"] for c in second["items"]]
    third = client.get(
        f"/api/v1/calls?limit=50&cursor={second['next_cursor']}", headers=staff["nurse"]
    ).json()
    seen += [c["id"] for c in third["items"]]
    assert third["next_cursor"] is None
    assert seen == list(range(120, 0, -1))


def test_call_filters(
    client: TestClient, staff: Staff, phone: Telephone, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    _make_calls(phone, clock, 10)
    phone.post("/twilio/voice", {"CallSid": "CAstranger", "From": "+16175550199"})
    by_ana = client.get("/api/v1/calls?participant_id=1", headers=staff["nurse"]).json()["items"]
    assert len(by_ana) == 10
    assert {(c["initiator_id"], c["callee_id"]) for c in by_ana} == {(1, 2), (2, 1)}
    window = client.get(
        "/api/v1/calls?since=2026-11-17T20:02:00Z&until=2026-11-17T20:05:00Z", headers=staff["nurse"]
    ).json()["items"]
    assert len(window) == 3
    assert len(client.get("/api/v1/calls?pair_id=1", headers=staff["nurse"]).json()["items"]) == 10
    failed = client.get("/api/v1/calls?outcome=contact", headers=staff["nurse"]).json()["items"]
    assert failed == []


@pytest.mark.parametrize(
    "query", ["cursor=garbage", "cursor=WyJ4Il0", "limit=0", "limit=501", "outcome=nope", "since=yesterday"]
)
def test_malformed_paging_and_filters_are_422(client: TestClient, staff: Staff, query: str) -> None:
    response = client.get(f"/api/v1/calls?{query}", headers=staff["nurse"])
    assert response.status_code == 422 and response.json()["detail"]


FORGED_CURSORS = [
    ("/api/v1/pairs", encode_cursor(2**63)),  # SQLite cannot bind it: a 500 before it was refused
    ("/api/v1/pairs", encode_cursor(2**31)),
    ("/api/v1/participants", encode_cursor(0)),
    ("/api/v1/messages", encode_cursor(-1)),
    ("/api/v1/audit", encode_cursor(True)),
    ("/api/v1/calls", encode_cursor(datetime(2026, 11, 17, tzinfo=UTC), 2**63)),
]


@pytest.mark.parametrize(("path", "cursor"), FORGED_CURSORS)
def test_a_forged_cursor_with_an_id_no_row_can_have_is_422_naming_the_cursor(
    client: TestClient, staff: Staff, path: str, cursor: str
) -> None:
    response = client.get(f"{path}?cursor={cursor}", headers=staff["admin"])
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "cursor"]]


def test_the_largest_id_is_still_a_cursor(client: TestClient, staff: Staff) -> None:
    response = client.get(f"/api/v1/pairs?cursor={encode_cursor(2**31 - 1)}", headers=staff["nurse"])
    assert response.status_code == 200 and response.json()["items"] == []


# ---------------------------------------------------------------- messages, attention, audit, export


def test_the_care_team_inbox_plays_recordings_to_signed_in_staff_and_marks_them_handled(
    client: TestClient,
    staff: Staff,
    phone: Telephone,
    programme: Programme,
    ana_and_bea: Pairing,
    settings: Any,
    fake_twilio_server: ServerThread,
    app: Any,
) -> None:
    app.state.context.settings = settings.model_copy(update={"twilio_api_url": fake_twilio_server.url})
    phone.call(ANA, Scripted(["1"], talk_seconds=70, message_seconds=42), Scripted(["1"]))
    (message,) = client.get("/api/v1/messages?handled=false", headers=staff["nurse"]).json()["items"]
    assert (message["participant_id"], message["duration_seconds"], message["handled_at"]) == (1, 42, None)

    audio = client.get(message["recording_url"], headers=staff["nurse"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert client.get(message["recording_url"]).status_code == 401

    handled = client.post(f"/api/v1/messages/{message['id']}/handle", headers=staff["nurse"]).json()
    assert handled["handled_by"] == "nurse@clinic.example.org" and handled["handled_at"]
    assert client.get("/api/v1/messages?handled=false", headers=staff["nurse"]).json()["items"] == []


def test_the_recording_is_fetched_after_the_request_is_committed(
    client: TestClient,
    staff: Staff,
    programme: Programme,
    ana_and_bea: Pairing,
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fetching from Twilio takes up to 15 s: the request's transaction (on SQLite the write
    lock the webhooks wait for) must be over by then, and its audit row stored."""
    from datetime import UTC, datetime

    from app.models import CareTeamMessage
    from app.twilio import rest

    with programme.session() as s:
        s.add(CareTeamMessage(recording_sid="RE" + "1" * 32, participant_id=1, received_at=datetime.now(UTC)))
        s.commit()
    seen_while_fetching: list[str] = []

    def fetch(settings: Any, url: str) -> rest.RecordingUnavailable:
        seen_while_fetching.extend(e.action for e in programme.rows(AuditEvent))
        return rest.RecordingUnavailable("could not fetch the recording from Twilio")

    monkeypatch.setattr(rest, "fetch_recording", fetch)
    response = client.get("/api/v1/messages/1/recording", headers=staff["nurse"])
    assert response.status_code == 502
    assert response.json() == {"detail": "could not fetch the recording from Twilio"}
    assert seen_while_fetching == ["message.listen"]


def test_an_unreachable_twilio_is_a_502_saying_so(
    client: TestClient, staff: Staff, programme: Programme, ana_and_bea: Pairing, app: Any, settings: Any
) -> None:
    from datetime import UTC, datetime

    from app.models import CareTeamMessage

    app.state.context.settings = settings.model_copy(update={"twilio_api_url": "http://127.0.0.1:9"})
    with programme.session() as s:
        s.add(CareTeamMessage(recording_sid="RE" + "2" * 32, participant_id=1, received_at=datetime.now(UTC)))
        s.commit()
    response = client.get("/api/v1/messages/1/recording", headers=staff["nurse"])
    assert response.status_code == 502 and "recording" in response.json()["detail"]


def test_staff_clear_an_attention_flag_with_a_note(
    client: TestClient, staff: Staff, programme: Programme, ana_and_bea: Pairing
) -> None:
    from datetime import UTC, datetime

    from app.models import AttentionFlag

    with programme.session() as s:
        s.add(
            AttentionFlag(
                pair_id=ana_and_bea[2],
                period_start=datetime(2026, 11, 10, tzinfo=UTC),
                reason="no contact for 2 weeks; 4 reminder calls unanswered",
                raised_at=datetime(2026, 11, 10, tzinfo=UTC),
            )
        )
        s.commit()
    (flag,) = client.get("/api/v1/attention", headers=staff["nurse"]).json()["items"]
    assert flag["participant_ids"] == [1, 2] and flag["reason"].startswith("no contact for 2 weeks")
    # nurses work the attention list: they clear a flag with a note (issue 14)
    cleared = client.post(
        f"/api/v1/attention/{flag['id']}/clear", json={"note": "called Ana"}, headers=staff["nurse"]
    )
    assert cleared.status_code == 200
    assert (
        cleared.json()["cleared_by"] == "nurse@clinic.example.org" and cleared.json()["note"] == "called Ana"
    )
    assert client.get("/api/v1/attention", headers=staff["nurse"]).json()["items"] == []
    history = client.get("/api/v1/attention?include_cleared=true&pair_id=1", headers=staff["nurse"]).json()[
        "items"
    ]
    assert len(history) == 1


def test_reads_and_changes_are_audited_and_the_audit_cannot_be_edited(
    client: TestClient, staff: Staff, ana_and_bea: Pairing
) -> None:
    client.get("/api/v1/calls?pair_id=1", headers=staff["nurse"])
    client.get("/api/v1/participants/2", headers=staff["nurse"])
    client.patch("/api/v1/participants/2", json={"language": "es"}, headers=staff["staff"])
    events = client.get("/api/v1/audit", headers=staff["admin"]).json()["items"]
    found = {(e["actor"], e["action"], e["target"]) for e in events}
    assert ("nurse@clinic.example.org", "calls.read", "pair:1") in found
    assert ("nurse@clinic.example.org", "participant.read", "participant:2") in found
    assert ("staff@clinic.example.org", "participant.update", "participant:2") in found
    assert all(e["client_ip"] for e in events)
    event_id = events[0]["id"]
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, f"/api/v1/audit/{event_id}", headers=staff["admin"]).status_code in (
            404,
            405,
        )


def test_the_export_names_no_one_and_shows_no_number(
    client: TestClient, staff: Staff, phone: Telephone, ana_and_bea: Pairing
) -> None:
    phone.call(ANA, Scripted(talk_seconds=100), Scripted(["1"]))
    phone.call(BEA, Scripted(), Scripted(["2"]))
    response = client.get("/api/v1/export/calls.csv", headers=staff["staff"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["outcome"] for r in rows] == ["contact", "declined"]
    assert rows[0]["initiator_id"] == "1" and rows[0]["is_contact"] == "1"
    for needle in ("Ana", "Bea", "555", "0101", "0102"):
        assert needle not in response.text


def test_the_export_streams_every_call_a_batch_at_a_time(
    client: TestClient,
    staff: Staff,
    phone: Telephone,
    clock: FakeClock,
    ana_and_bea: Pairing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.services import export

    monkeypatch.setattr(export, "BATCH", 3)
    _make_calls(phone, clock, 10)
    response = client.get("/api/v1/export/calls.csv", headers=staff["staff"])
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["call_id"]) for r in rows] == list(range(1, 11))


def test_the_export_holds_no_transaction_between_batches(
    app: Any, phone: Telephone, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    """The stream is read after the request's session is gone, at the client's pace: between
    batches a live call must still be able to write (on SQLite it would wait for the lock)."""
    from app.services import export

    _make_calls(phone, clock, 4)
    stream = export.calls_csv(app.state.sessionmaker, batch=3)
    header, first = next(stream), next(stream)
    assert header.startswith("call_id,") and len(first.splitlines()) == 3
    phone.post("/twilio/voice", {"CallSid": "CA" + "9" * 32, "From": ANA})
    rest = "".join(stream)
    assert [line.split(",")[0] for line in rest.splitlines()] == ["4", "5"]


def test_admins_manage_staff_accounts(client: TestClient, staff: Staff) -> None:
    created = client.post(
        "/api/v1/users",
        json={"email": "New@Clinic.example.org", "password": "short", "role": "nurse"},
        headers=staff["admin"],
    )
    assert created.status_code == 422 and "password" in str(created.json()["detail"])
    created = client.post(
        "/api/v1/users",
        json={"email": "new@clinic.example.org", "password": "long-enough-pass", "role": "nurse"},
        headers=staff["admin"],
    )
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert sign_in(client, "new@clinic.example.org", "long-enough-pass").status_code == 200
    client.patch(f"/api/v1/users/{user_id}", json={"disabled": True}, headers=staff["admin"])
    assert sign_in(client, "new@clinic.example.org", "long-enough-pass").status_code == 401
    me = client.get("/api/v1/users", headers=staff["admin"]).json()["items"][-1]
    assert client.patch(
        f"/api/v1/users/{me['id']}", json={"role": "nurse"}, headers=staff["admin"]
    ).status_code in (409, 200)


def test_one_address_trying_many_accounts_is_slowed_down_too(
    client: TestClient, staff: Staff, clock: FakeClock
) -> None:
    for i in range(50):
        assert sign_in(client, f"guess{i}@clinic.example.org", "wrong password!").status_code == 401
    refused = sign_in(client, "nurse@clinic.example.org", "nurse-password-long")
    assert refused.status_code == 429 and "this address" in refused.json()["detail"]
    clock.advance(minutes=16)
    assert sign_in(client, "nurse@clinic.example.org", "nurse-password-long").status_code == 200
