"""Staff passwords after NIST SP 800-63B: long enough, not too long to fit a passphrase, not a
common one; the same rules at the command line (tests/test_cli.py), in the API and the console."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.services.common_passwords import WORDS
from app.services.passwords import MAX_LENGTH, MIN_LENGTH, password_problem
from tests.conftest import Staff


@pytest.mark.parametrize(
    "password",
    [
        "short",
        "eleven char",
        "x" * (MAX_LENGTH + 1),
        "password1234",
        "Password2024!",
        "P@ssw0rd!2024",
        "iloveyou!!!!!!",
        "  dragon2024!!  ",
        "passwordpassword",
        "123456789012",
        "qwertyuiop123",
        "aaaaaaaaaaaa",
        "abcabcabcabc",
        "winniethepooh",
        "PeerLine2026!",
        "correct horse battery staple",
        "tab\there\tand\tthere",
        "ana@clinic.example.org",
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str) -> None:
    assert password_problem(password, email="ana@clinic.example.org") is not None


@pytest.mark.parametrize(
    "password",
    [
        "a quiet walk by the river",
        "Tr0ub4dor&3xyz",
        "nurse-password-long",
        "zebra kettle 1987 lantern",
        "kettle lamp9",  # exactly the minimum
        "días de lluvia en mayo",  # any printable character, accents and spaces included
        ("slow river under old stone bridges " * 4)[:MAX_LENGTH],  # exactly the maximum
    ],
)
def test_long_uncommon_passwords_are_accepted(password: str) -> None:
    assert MIN_LENGTH <= len(password) <= MAX_LENGTH
    assert password_problem(password, email="ana@clinic.example.org") is None


def test_the_shipped_list_is_a_few_thousand_common_passwords() -> None:
    assert 3000 < len(WORDS) < 10000
    assert {"123456", "password", "qwerty", "letmein", "iloveyou"} <= WORDS


def test_the_api_applies_the_same_rules(client: TestClient, staff: Staff) -> None:
    for password, message in (("password2024", "commonly used"), ("x" * 200, "at most 128")):
        refused = client.post(
            "/api/v1/users",
            json={"email": "new@clinic.example.org", "password": password, "role": "nurse"},
            headers=staff["admin"],
        )
        assert refused.status_code == 422
        (error,) = refused.json()["detail"]
        assert error["loc"] == ["body", "password"] and message in error["msg"]


def test_the_console_applies_the_same_rules(app: FastAPI, staff: Staff) -> None:
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as browser:
        form = browser.get("/console/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        browser.post(
            "/console/login",
            data={
                "email": "admin@clinic.example.org",
                "password": "admin-password-long",
                "csrf_token": token[1],
            },
        )
        page = browser.get("/console/staff").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        refused = browser.post(
            "/console/staff",
            data={
                "email": "new@clinic.example.org",
                "password": "Summer2024!!",
                "role": "nurse",
                "csrf_token": csrf[1],
            },
        )
        assert refused.status_code == 400 and "commonly used password" in refused.text
        made = browser.post(
            "/console/staff",
            data={
                "email": "new@clinic.example.org",
                "password": "a quiet walk by the river",
                "role": "nurse",
                "csrf_token": csrf[1],
            },
        )
        assert made.status_code == 303
