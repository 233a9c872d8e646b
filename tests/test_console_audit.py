"""The console leaves the audit trail the API leaves: every read of personal data and every change.

Table-driven, through the real sign-in form (CSRF token and nonce cookie included), with
FastAPI's TestClient; no browser needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.api.pagination import encode_cursor
from app.models import AttentionFlag, AuditEvent, CareTeamMessage, StaffUser
from app.services.audit import Action
from app.settings import Settings
from tests.conftest import ANA, BEA, CAL, DEE, FakeClock, Programme, ServerThread, Staff

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class World:
    """What the pages are about: a pair (Ana & Bea) with a message and a flag, two people free to pair."""

    ana: int
    pair: int
    cal: int
    dee: int
    message: int
    flag: int
    nurse_user: int

    def fill(self, text: str) -> str:
        return text.format(**self.__dict__)


@pytest.fixture
def world(programme: Programme, staff: Staff, clock: FakeClock) -> World:
    ana, bea = programme.enrol("Ana", ANA), programme.enrol("Bea", BEA)
    cal, dee = programme.enrol("Cal", CAL), programme.enrol("Dee", DEE)
    pair = programme.pair(ana, bea)
    with programme.session() as db:
        message = CareTeamMessage(
            recording_sid="RE" + "0" * 32, participant_id=ana, duration_seconds=20, received_at=clock()
        )
        flag = AttentionFlag(
            pair_id=pair, period_start=clock(), raised_at=clock(), reason="quiet for 2 weeks"
        )
        db.add_all([message, flag])
        db.commit()
        message_id, flag_id = message.id, flag.id
    return World(ana, pair, cal, dee, message_id, flag_id, staff.users["nurse"].id)


class Console:
    """A browser's worth of cookies, signed in through the form."""

    def __init__(self, app: FastAPI) -> None:
        # the session cookie is Secure because PUBLIC_BASE_URL is https: so is this client
        self.http = TestClient(app, base_url="https://testserver", follow_redirects=False)
        self.app = app

    def sign_in(self, role: str, password: str | None = None) -> Any:
        form = self.http.get("/console/login")
        return self.http.post(
            "/console/login",
            data={
                "email": f"{role}@clinic.example.org",
                "password": password or f"{role}-password-long",
                "csrf_token": _csrf(form.text),
                "next": "/console/",
            },
        )

    def csrf(self) -> str:
        return _csrf(self.http.get("/console/").text)

    def last_event_id(self) -> int:
        with self.app.state.sessionmaker() as db:
            return int(db.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)

    def events_since(self, mark: int) -> list[tuple[str, str, str | None]]:
        with self.app.state.sessionmaker() as db:
            rows = db.scalars(select(AuditEvent).where(AuditEvent.id > mark).order_by(AuditEvent.id))
            return [(e.actor, e.action, e.target) for e in rows]


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def console(app: FastAPI) -> Iterator[Console]:
    c = Console(app)
    with c.http:
        yield c


@dataclass(frozen=True)
class Case:
    role: str
    method: str
    path: str
    action: Action | None  # None: the page shows nothing personal and changes nothing
    target: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    status: int = 200

    def __str__(self) -> str:
        return f"{self.role} {self.method} {self.path} {self.status}"


CASES = [
    # today, pairs
    Case("nurse", "GET", "/console/", Action.TODAY_READ),
    Case("nurse", "GET", "/console/pairs", Action.PAIRS_READ, "1 pairs"),
    Case("nurse", "GET", "/console/pairs?q=an&show=all", Action.PAIRS_READ, "1 pairs"),
    Case("nurse", "GET", "/console/pairs/{pair}", Action.PAIR_READ, "pair:{pair}"),
    Case("staff", "GET", "/console/pairs/new", Action.PARTICIPANTS_READ, "2 unpaired participants"),
    Case(
        "staff",
        "POST",
        "/console/pairs",
        Action.PAIR_CREATE,
        "pair:2",
        {"first": "{cal}", "second": "{dee}"},
        303,
    ),
    Case(
        "staff",
        "POST",
        "/console/pairs",
        Action.PARTICIPANTS_READ,
        "2 unpaired participants",
        {"first": "{cal}", "second": "{cal}"},
        400,
    ),
    Case(
        "staff", "POST", "/console/pairs/{pair}/notes", Action.PAIR_NOTES, "pair:{pair}", {"notes": "x"}, 303
    ),
    Case("staff", "POST", "/console/pairs/{pair}/end", Action.PAIR_END, "pair:{pair}", {}, 303),
    # participants
    Case("staff", "GET", "/console/participants", Action.PARTICIPANTS_READ, "4 participants"),
    Case("staff", "GET", "/console/participants/new", None),
    Case(
        "staff",
        "POST",
        "/console/participants",
        Action.PARTICIPANT_CREATE,
        "participant:5",
        {"name": "Eve", "phone": "(617) 555-0105", "timezone": "America/New_York", "language": "en"},
        303,
    ),
    Case(
        "staff",
        "POST",
        "/console/participants",
        None,
        form={"name": "Eve", "phone": "555-01", "timezone": "America/New_York"},
        status=400,
    ),
    Case("staff", "GET", "/console/participants/{ana}", Action.PARTICIPANT_READ, "participant:{ana}"),
    Case(
        "staff",
        "POST",
        "/console/participants/{ana}",
        Action.PARTICIPANT_UPDATE,
        "participant:{ana}",
        {"name": "Ana B.", "timezone": "America/Chicago", "quiet_hours": "", "language": "es"},
        303,
    ),
    Case(
        "staff",
        "POST",
        "/console/participants/{ana}",
        Action.PARTICIPANT_READ,  # the refused edit shows the number again
        "participant:{ana}",
        {"name": "Ana", "timezone": "Mars/Olympus", "quiet_hours": ""},
        400,
    ),
    Case("staff", "GET", "/console/participants/{ana}/remove", Action.PARTICIPANT_READ, "participant:{ana}"),
    Case(
        "staff",
        "POST",
        "/console/participants/{ana}/remove",
        Action.PARTICIPANT_DELETE,
        "participant:{ana}",
        {},
        303,
    ),
    # messages and attention
    Case("nurse", "GET", "/console/messages", Action.MESSAGES_READ, "1 messages"),
    Case("nurse", "GET", "/console/messages?show=all", Action.MESSAGES_READ, "1 messages"),
    Case(
        "nurse",
        "POST",
        "/console/messages/{message}/handle",
        Action.MESSAGE_HANDLE,
        "message:{message}",
        {},
        303,
    ),
    Case("nurse", "GET", "/console/attention", Action.ATTENTION_READ, "1 pairs"),
    Case(
        "staff",
        "POST",
        "/console/attention/{flag}/clear",
        Action.ATTENTION_CLEAR,
        "pair:{pair}",
        {"note": "rang"},
        303,
    ),
    # staff accounts and the audit log
    Case("admin", "GET", "/console/staff", Action.USERS_READ, "3 accounts"),
    Case(
        "admin",
        "POST",
        "/console/staff",
        Action.USER_CREATE,
        "staff_user:4",
        {"email": "new@clinic.example.org", "password": "a-long-enough-password", "role": "nurse"},
        303,
    ),
    Case(
        "admin",
        "POST",
        "/console/staff",
        Action.USERS_READ,  # the refused account shows the list again
        "3 accounts",
        {"email": "new@clinic.example.org", "password": "short", "role": "nurse"},
        400,
    ),
    Case(
        "admin",
        "POST",
        "/console/staff/{nurse_user}",
        Action.USER_UPDATE,
        "staff_user:{nurse_user}",
        {"action": "disable"},
        303,
    ),
    Case(
        "admin",
        "POST",
        "/console/staff/{nurse_user}",
        Action.USER_SIGN_OUT,
        "staff_user:{nurse_user}",
        {"action": "sign_out"},
        303,
    ),
    Case("admin", "GET", "/console/audit", Action.AUDIT_READ),
    # one's own account
    Case("nurse", "GET", "/console/account", None),
    Case(
        "nurse",
        "POST",
        "/console/account/password",
        Action.PASSWORD_CHANGE,
        "staff_user:{nurse_user}",
        {
            "current_password": "nurse-password-long",
            "new_password": "a new phrase for the nurse",
            "new_password_again": "a new phrase for the nurse",
        },
        303,
    ),
    Case(
        "nurse",
        "POST",
        "/console/account/password",
        None,  # refused before any password was checked
        None,
        {"current_password": "x", "new_password": "short", "new_password_again": "short"},
        400,
    ),
    Case(
        "nurse",
        "POST",
        "/console/account/sign-out-everywhere",
        Action.SIGN_OUT_EVERYWHERE,
        "staff_user:{nurse_user}",
        {},
        303,
    ),
    # refusals and misses record nothing
    Case("staff", "GET", "/console/pairs/999", None, status=404),
    Case("staff", "GET", "/console/participants/999", None, status=404),
    Case("nurse", "GET", "/console/pairs/99999999999999999999", None, status=422),
    Case("nurse", "GET", f"/console/pairs?cursor={encode_cursor(2**63)}", None, status=422),
    Case("admin", "GET", f"/console/audit?cursor={encode_cursor(0)}", None, status=422),
    Case("nurse", "GET", "/console/messages/999/recording", None, status=404),
    Case("nurse", "POST", "/console/messages/999/handle", None, None, {}, 303),  # back to the inbox
    Case("staff", "POST", "/console/attention/999/clear", None, None, {}, 303),  # back to the list
    Case("nurse", "GET", "/console/participants", None, status=403),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_page_and_form_leaves_its_audit_row(console: Console, world: World, case: Case) -> None:
    assert console.sign_in(case.role).status_code == 303
    form = {k: world.fill(v) for k, v in case.form.items()}
    if case.method == "POST":
        form["csrf_token"] = console.csrf()
    mark = console.last_event_id()
    path = world.fill(case.path)
    response = console.http.request(case.method, path, data=form or None)
    assert response.status_code == case.status, response.text[:300]
    expected = (
        [(f"{case.role}@clinic.example.org", str(case.action), case.target and world.fill(case.target))]
        if case.action
        else []
    )
    assert console.events_since(mark) == expected


def test_a_form_without_its_token_changes_nothing_and_records_nothing(console: Console, world: World) -> None:
    console.sign_in("staff")
    mark = console.last_event_id()
    response = console.http.post(f"/console/pairs/{world.pair}/end", data={"csrf_token": "forged"})
    assert response.status_code == 403 and "form has expired" in response.text
    assert console.events_since(mark) == []


def test_signing_in_and_out_is_recorded(console: Console, staff: Staff) -> None:
    mark = console.last_event_id()
    refused = console.sign_in("nurse", password="not-the-password")
    assert refused.status_code == 401 and "The email or password is not right." in refused.text
    assert console.sign_in("nurse").status_code == 303
    token = console.csrf()
    assert console.http.post("/console/logout", data={"csrf_token": token}).status_code == 303
    nurse = "nurse@clinic.example.org"
    assert [(actor, action) for actor, action, _ in console.events_since(mark)] == [
        (nurse, Action.SIGN_IN_FAILED),
        (nurse, Action.SIGN_IN),
        (nurse, Action.TODAY_READ),  # the page the CSRF token came from
        (nurse, Action.SIGN_OUT),
    ]


def test_an_empty_sign_in_form_is_not_an_attempt(console: Console, staff: Staff) -> None:
    mark = console.last_event_id()
    form = console.http.get("/console/login")
    response = console.http.post(
        "/console/login", data={"email": "", "password": "", "csrf_token": _csrf(form.text)}
    )
    assert response.status_code == 400 and "Enter your email address." in response.text
    assert console.events_since(mark) == []


@pytest.mark.parametrize("twilio_answers", [True, False], ids=["twilio-answers", "twilio-down"])
def test_listening_to_a_message_is_recorded_whether_or_not_twilio_answers(
    console: Console,
    world: World,
    settings: Settings,
    fake_twilio_server: ServerThread,
    twilio_answers: bool,
) -> None:
    settings.twilio_api_url = fake_twilio_server.url if twilio_answers else "http://127.0.0.1:1"
    console.sign_in("nurse")
    mark = console.last_event_id()
    response = console.http.get(f"/console/messages/{world.message}/recording")
    if twilio_answers:
        # development without a Twilio account plays a generated tone in place of the fake's silent frame
        assert response.status_code == 200 and response.headers["content-type"] in ("audio/mpeg", "audio/wav")
    else:
        assert response.status_code == 502
    assert console.events_since(mark) == [
        ("nurse@clinic.example.org", Action.MESSAGE_LISTEN, f"message:{world.message}")
    ]


def test_handling_a_message_twice_records_it_once(console: Console, world: World) -> None:
    console.sign_in("nurse")
    token = console.csrf()
    mark = console.last_event_id()
    for _ in range(2):
        response = console.http.post(f"/console/messages/{world.message}/handle", data={"csrf_token": token})
        assert response.status_code == 303
    assert [action for _, action, _ in console.events_since(mark)] == [Action.MESSAGE_HANDLE]


def test_an_admin_changes_another_account_by_the_services_rule_but_never_their_own(
    console: Console, world: World, staff: Staff
) -> None:
    console.sign_in("admin")
    token = console.csrf()

    def edit(user_id: int, form: dict[str, str]) -> Any:
        return console.http.post(f"/console/staff/{user_id}", data={**form, "csrf_token": token})

    def nurse_account() -> tuple[str, bool]:
        with console.app.state.sessionmaker() as db:
            user = db.get(StaffUser, world.nurse_user)
            assert user is not None
            return user.role, user.disabled_at is not None

    assert edit(world.nurse_user, {"role": "staff"}).status_code == 303
    assert nurse_account() == ("staff", False)
    assert edit(world.nurse_user, {"role": "superuser"}).status_code == 303  # no such role: no change
    # the switch wins over a role sent with it
    assert edit(world.nurse_user, {"action": "disable", "role": "admin"}).status_code == 303
    assert nurse_account() == ("staff", True)
    assert edit(world.nurse_user, {"action": "enable"}).status_code == 303
    assert nurse_account() == ("staff", False)
    mark = console.last_event_id()
    refused = edit(staff.users["admin"].id, {"action": "enable"})
    assert refused.status_code == 403 and "your own account" in refused.text
    assert console.events_since(mark) == []


def test_a_disabled_account_is_turned_away_by_the_console_and_the_api_alike(
    console: Console, staff: Staff, clock: FakeClock
) -> None:
    assert console.sign_in("nurse").status_code == 303
    bearer = staff["nurse"]
    assert console.http.get("/console/").status_code == 200
    assert console.http.get("/api/v1/stats", headers=bearer).status_code == 200
    with console.app.state.sessionmaker() as db:
        user = db.get(StaffUser, staff.users["nurse"].id)
        assert user is not None
        user.disabled_at = clock()
        db.commit()
    page = console.http.get("/console/")
    assert page.status_code == 303 and page.headers["location"] == "/console/login"
    assert console.http.get("/api/v1/stats", headers=bearer).status_code == 401
