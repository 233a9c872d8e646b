"""Sessions end: a console cookie or a bearer token stops working the moment the server says so.

Signing out, a password change or reset, disabling the account and "sign out everywhere" (by
the person themselves or an admin) each end what they should, on both databases; a console
session also ends after 15 idle minutes and after 12 hours however busy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.models import AuditEvent, Pair, StaffSession, StaffUser
from app.services.audit import Action
from app.settings import Settings
from tests.conftest import SECRET, FakeClock, Programme, Staff

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """One browser's cookies, signed in through the console's form."""

    def __init__(self, app: FastAPI) -> None:
        # the session cookie is Secure because PUBLIC_BASE_URL is https: so is this client
        self.http = TestClient(app, base_url="https://testserver", follow_redirects=False)

    def sign_in(self, role: str, password: str | None = None) -> Any:
        form = self.http.get("/console/login")
        return self.http.post(
            "/console/login",
            data={
                "email": f"{role}@clinic.example.org",
                "password": password or f"{role}-password-long",
                "csrf_token": csrf(form.text),
            },
        )

    def token(self, path: str = "/console/") -> str:
        return csrf(self.http.get(path).text)

    def signed_in(self) -> bool:
        return self.http.get("/console/pairs").status_code == 200

    @property
    def cookie(self) -> str:
        value = self.http.cookies.get("peerline_session")
        assert value, "no session cookie"
        return value


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def browsers(app: FastAPI) -> Iterator[tuple[Browser, Browser]]:
    a, b = Browser(app), Browser(app)
    with a.http, b.http:
        yield a, b


def current_bearer(app: FastAPI, staff: Staff, role: str) -> dict[str, str]:
    """Bearer headers issued now, under the account's session epoch as it is in the database."""
    with app.state.sessionmaker() as s:
        user = s.get(StaffUser, staff.users[role].id)
        assert user is not None
        return {"Authorization": f"Bearer {app.state.tokens.issue(user, staff.clock())}"}


def api_ok(client: TestClient, headers: dict[str, str]) -> bool:
    status = client.get("/api/v1/stats", headers=headers).status_code
    assert status in (200, 401)
    return status == 200


# ---------------------------------------------------------------- the console


def test_after_signing_out_the_old_cookie_reads_no_page_and_saves_no_note(
    browsers: tuple[Browser, Browser], staff: Staff, programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    browser, thief = browsers
    assert browser.sign_in("staff").status_code == 303
    pair_id = ana_and_bea[2]
    form_token = browser.token(f"/console/pairs/{pair_id}")
    # someone copied the cookie (a shared computer, a proxy log): it works while the session does
    thief.http.cookies.set("peerline_session", browser.cookie, domain="testserver.local")
    assert thief.signed_in()

    assert browser.http.post("/console/logout", data={"csrf_token": form_token}).status_code == 303

    for path in ("/console/", "/console/pairs", f"/console/pairs/{pair_id}", "/console/participants/1"):
        refused = thief.http.get(path)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/console/login")
    saved = thief.http.post(
        f"/console/pairs/{pair_id}/notes", data={"csrf_token": form_token, "notes": "written after logout"}
    )
    assert saved.status_code == 303 and saved.headers["location"].startswith("/console/login")
    assert programme.get(Pair, pair_id).notes == ""
    with programme.session() as s:
        ended = s.scalars(select(StaffSession.ended_at)).all()
    assert len(ended) == 1 and ended[0] is not None


def test_a_console_session_ends_after_15_idle_minutes_and_after_12_hours_however_busy(
    browsers: tuple[Browser, Browser], staff: Staff, clock: FakeClock
) -> None:
    browser, _ = browsers
    browser.sign_in("nurse")
    for _ in range(71):  # every 10 minutes for 11 h 50 min: never idle
        clock.advance(minutes=10)
        assert browser.signed_in()
    clock.advance(minutes=10, seconds=1)
    assert not browser.signed_in()

    browser.sign_in("nurse")
    clock.advance(minutes=14, seconds=59)
    assert browser.signed_in()
    clock.advance(minutes=15, seconds=1)
    assert not browser.signed_in()


def test_the_server_decides_the_idle_timeout_not_the_cookie(
    browsers: tuple[Browser, Browser], staff: Staff, clock: FakeClock, app: FastAPI
) -> None:
    """A cookie re-issued by a forger who holds the cookie key still names an idle session."""
    browser, _ = browsers
    browser.sign_in("nurse")
    keys = app.state.session_keys
    session = keys.read(browser.cookie, clock())
    clock.advance(minutes=20)
    fresh, _ = keys.issue(session.user_id, clock(), session.sid)
    browser.http.cookies.set("peerline_session", fresh, domain="testserver.local")
    assert not browser.signed_in()


def test_changing_the_password_signs_out_every_other_browser_and_token(
    client: TestClient, browsers: tuple[Browser, Browser], staff: Staff, programme: Programme
) -> None:
    here, elsewhere = browsers
    here.sign_in("nurse")
    elsewhere.sign_in("nurse")
    bearer = staff["nurse"]
    assert api_ok(client, bearer) and elsewhere.signed_in()

    form = here.token("/console/account")
    wrong = here.http.post(
        "/console/account/password",
        data={
            "csrf_token": form,
            "current_password": "not my password",
            "new_password": "a brand new phrase",
            "new_password_again": "a brand new phrase",
        },
    )
    assert wrong.status_code == 400 and "This is not your current password." in wrong.text
    weak = here.http.post(
        "/console/account/password",
        data={
            "csrf_token": form,
            "current_password": "nurse-password-long",
            "new_password": "Password2024!",
            "new_password_again": "Password2024!",
        },
    )
    assert weak.status_code == 400 and "commonly used password" in weak.text
    changed = here.http.post(
        "/console/account/password",
        data={
            "csrf_token": form,
            "current_password": "nurse-password-long",
            "new_password": "a brand new phrase",
            "new_password_again": "a brand new phrase",
        },
    )
    assert changed.status_code == 303

    assert here.signed_in(), "whoever changed the password stays signed in, with a fresh session"
    assert not elsewhere.signed_in()
    assert not api_ok(client, bearer)
    assert here.sign_in("nurse").status_code == 401
    assert here.sign_in("nurse", "a brand new phrase").status_code == 303
    actions = [e.action for e in programme.rows(AuditEvent)]
    assert actions.count(Action.PASSWORD_CHANGE) == 1


def test_signing_out_everywhere_ends_every_session_and_token_of_the_account_only(
    client: TestClient, browsers: tuple[Browser, Browser], staff: Staff
) -> None:
    here, elsewhere = browsers
    here.sign_in("nurse")
    elsewhere.sign_in("staff")
    nurse, staff_bearer = staff["nurse"], staff["staff"]
    response = here.http.post("/console/account/sign-out-everywhere", data={"csrf_token": here.token()})
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert not here.signed_in() and not api_ok(client, nurse)
    # another account is untouched
    assert elsewhere.signed_in() and api_ok(client, staff_bearer)


def test_an_admin_signs_someone_out_everywhere_and_disabling_does_it_too(
    client: TestClient, browsers: tuple[Browser, Browser], staff: Staff, programme: Programme
) -> None:
    admin, nurse_browser = browsers
    admin.sign_in("admin")
    nurse_browser.sign_in("nurse")
    nurse_id = staff.users["nurse"].id
    bearer = staff["nurse"]
    token = admin.token("/console/staff")
    assert "Sign out everywhere" in admin.http.get("/console/staff").text

    out = admin.http.post(f"/console/staff/{nurse_id}", data={"csrf_token": token, "action": "sign_out"})
    assert out.status_code == 303
    assert not nurse_browser.signed_in() and not api_ok(client, bearer)
    assert nurse_browser.sign_in("nurse").status_code == 303, "the account itself still works"

    bearer = current_bearer(client.app, staff, "nurse")  # type: ignore[arg-type]
    assert api_ok(client, bearer) and nurse_browser.signed_in()
    admin.http.post(f"/console/staff/{nurse_id}", data={"csrf_token": token, "action": "disable"})
    assert not nurse_browser.signed_in() and not api_ok(client, bearer)
    # enabling again does not bring the old sessions back
    admin.http.post(f"/console/staff/{nurse_id}", data={"csrf_token": token, "action": "enable"})
    assert not nurse_browser.signed_in() and not api_ok(client, bearer)
    actions = [e.action for e in programme.rows(AuditEvent)]
    assert Action.USER_SIGN_OUT in actions


# ---------------------------------------------------------------- bearer tokens


def test_a_token_stops_at_once_when_its_account_is_disabled_or_deleted(
    client: TestClient, staff: Staff, programme: Programme
) -> None:
    nurse, admin = staff["nurse"], staff["admin"]
    assert api_ok(client, nurse)
    disabled = client.patch(
        f"/api/v1/users/{staff.users['nurse'].id}", json={"disabled": True}, headers=admin
    )
    assert disabled.status_code == 200
    assert not api_ok(client, nurse)

    staff_bearer = staff["staff"]
    assert api_ok(client, staff_bearer)
    with programme.session() as s:
        s.execute(delete(StaffUser).where(StaffUser.id == staff.users["staff"].id))
        s.commit()
    assert not api_ok(client, staff_bearer)


def test_a_password_change_through_the_api_ends_older_tokens_and_answers_a_new_one(
    client: TestClient, staff: Staff
) -> None:
    old = staff["nurse"]
    other = staff["nurse"]
    weak = client.post(
        "/api/v1/auth/password",
        json={"current_password": "nurse-password-long", "new_password": "iloveyou1234"},
        headers=old,
    )
    assert weak.status_code == 422 and weak.json()["detail"][0]["loc"] == ["body", "password"]
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "nope nope nope", "new_password": "a different long phrase"},
        headers=old,
    )
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "current_password"]
    assert api_ok(client, old), "a refused change ends nothing"

    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": "nurse-password-long", "new_password": "a different long phrase"},
        headers=old,
    )
    assert changed.status_code == 200
    new = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert not api_ok(client, old) and not api_ok(client, other)
    assert api_ok(client, new)


def test_sign_out_everywhere_through_the_api_for_oneself_and_by_an_admin(
    client: TestClient, staff: Staff
) -> None:
    mine = staff["staff"]
    assert client.post("/api/v1/auth/sign-out-everywhere", headers=mine).status_code == 204
    assert not api_ok(client, mine)

    nurse, admin = staff["nurse"], staff["admin"]
    refused = client.post(f"/api/v1/users/{staff.users['admin'].id}/sign-out-everywhere", headers=nurse)
    assert refused.status_code == 403
    done = client.post(f"/api/v1/users/{staff.users['nurse'].id}/sign-out-everywhere", headers=admin)
    assert done.status_code == 204
    assert not api_ok(client, nurse) and api_ok(client, admin)
    missing = client.post("/api/v1/users/999/sign-out-everywhere", headers=admin)
    assert missing.status_code == 404


def test_a_token_from_before_this_version_is_refused(client: TestClient, staff: Staff, app: FastAPI) -> None:
    """Tokens had no session epoch before: they cannot prove they are current, so they are refused
    (they lasted 30 minutes; signing in again is the whole cost)."""
    import json

    tokens = app.state.tokens
    payload = json.dumps({"uid": staff.users["nurse"].id, "p": "api"}).encode()
    legacy = tokens.fernet.encrypt(payload).decode()
    assert client.get("/api/v1/stats", headers={"Authorization": f"Bearer {legacy}"}).status_code == 401


# ---------------------------------------------------------------- the command line


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    settings_module.get_settings.cache_clear()
    yield
    settings_module.get_settings.cache_clear()


def test_disabling_or_resetting_at_the_command_line_ends_sessions_at_once(
    cli_env: None, client: TestClient, browsers: tuple[Browser, Browser], staff: Staff, settings: Settings
) -> None:
    browser, _ = browsers
    runner = CliRunner()
    browser.sign_in("nurse")
    bearer = staff["nurse"]
    reset = runner.invoke(
        cli,
        ["user", "reset-password", "Nurse@clinic.example.org", "--password-stdin"],
        input="a freshly reset phrase\n",
    )
    assert reset.exit_code == 0, reset.output
    assert not browser.signed_in() and not api_ok(client, bearer)
    assert browser.sign_in("nurse", "a freshly reset phrase").status_code == 303

    bearer = current_bearer(client.app, staff, "nurse")  # type: ignore[arg-type]
    disabled = runner.invoke(cli, ["user", "disable", "nurse@clinic.example.org"])
    assert disabled.exit_code == 0, disabled.output
    assert not browser.signed_in() and not api_ok(client, bearer)
    assert browser.sign_in("nurse", "a freshly reset phrase").status_code == 401


def test_sessions_of_an_account_do_not_pile_up(
    browsers: tuple[Browser, Browser], staff: Staff, clock: FakeClock, programme: Programme
) -> None:
    browser, _ = browsers
    for _ in range(30):
        browser.sign_in("nurse")
        clock.advance(hours=1)
    with programme.session() as s:
        count = s.scalar(select(func.count(StaffSession.id)))
    assert count is not None and count <= 13  # the last 12 hours' worth, and the new one
