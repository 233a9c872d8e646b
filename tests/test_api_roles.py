"""Every endpoint, for every role: allowed, or refused with a message that says why."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Programme, Staff

ROLES = ["nobody", "nurse", "staff", "admin"]
RANK = {"nobody": 0, "nurse": 1, "staff": 2, "admin": 3}

# (method, path, json body, least role)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/participants", None, "nurse"),
    ("GET", "/api/v1/participants/1", None, "nurse"),
    (
        "POST",
        "/api/v1/participants",
        {"name": "Eve", "phone": "+16175550105", "timezone": "America/New_York"},
        "staff",
    ),
    ("PATCH", "/api/v1/participants/1", {"quiet_hours": "22:00-08:00"}, "staff"),
    ("GET", "/api/v1/pairs", None, "nurse"),
    ("GET", "/api/v1/pairs/1", None, "nurse"),
    ("GET", "/api/v1/pairs/1/stats", None, "nurse"),
    ("GET", "/api/v1/stats", None, "nurse"),
    ("GET", "/api/v1/calls", None, "nurse"),
    ("GET", "/api/v1/attention", None, "nurse"),
    ("GET", "/api/v1/messages", None, "nurse"),
    ("GET", "/api/v1/export/calls.csv", None, "staff"),
    ("GET", "/api/v1/audit", None, "admin"),
    ("GET", "/api/v1/users", None, "admin"),
    (
        "POST",
        "/api/v1/users",
        {"email": "new@clinic.example.org", "password": "a-long-password", "role": "nurse"},
        "admin",
    ),
    ("POST", "/api/v1/pairs/1/end", None, "staff"),
    ("POST", "/api/v1/pairs", {"participant_ids": [3, 4]}, "staff"),
    ("DELETE", "/api/v1/participants/2", None, "staff"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "least"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_each_role_is_allowed_or_refused_with_a_reason(
    client: TestClient,
    staff: Staff,
    ana_and_bea: tuple[int, int, int],
    programme: Programme,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    least: str,
) -> None:
    programme.enrol("Cal", "+16175550103")
    programme.enrol("Dee", "+16175550104")
    response = client.request(method, path, json=body, headers=staff[role])
    if role == "nobody":
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    elif RANK[role] < RANK[least]:
        assert response.status_code == 403
        assert response.json()["detail"] == f"this needs the {least} role; you are a {role}"
    else:
        assert 200 <= response.status_code < 300, response.text


def test_a_garbage_or_expired_token_is_refused(client: TestClient, staff: Staff, clock: Any) -> None:
    assert client.get("/api/v1/pairs", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    headers = staff["admin"]
    assert client.get("/api/v1/pairs", headers=headers).status_code == 200
    clock.advance(minutes=31)
    assert client.get("/api/v1/pairs", headers=headers).status_code == 401


def test_a_nurse_sees_only_the_last_two_digits(
    client: TestClient, staff: Staff, ana_and_bea: tuple[int, int, int]
) -> None:
    nurse = client.get("/api/v1/participants/1", headers=staff["nurse"]).json()
    staffer = client.get("/api/v1/participants/1", headers=staff["staff"]).json()
    assert nurse["phone"] == "•••-•••-••01"
    assert staffer["phone"] == "+16175550101"
    listed = client.get("/api/v1/participants", headers=staff["nurse"]).json()["items"]
    assert {p["phone"] for p in listed} == {"•••-•••-••01", "•••-•••-••02"}
