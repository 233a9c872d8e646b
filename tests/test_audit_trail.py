"""Every read of personal data and every change leaves exactly one audit row, under one vocabulary.

The table names every /api/v1 endpoint: one added without an entry here fails the coverage test,
so a new endpoint cannot forget its audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.db import make_engine
from app.models import AttentionFlag, AuditEvent, CareTeamMessage, Pair, Participant, StaffUser
from app.services import notices
from app.services.audit import SYSTEM, Action
from app.settings import Settings
from tests.conftest import Programme, ServerThread, Staff


@dataclass(frozen=True)
class Audited:
    method: str
    path: str
    role: str
    action: Action
    target: str | None
    body: dict[str, Any] | None = None
    form: dict[str, str] | None = None

    @property
    def route(self) -> tuple[str, str]:
        return self.method, self.path.split("?")[0]


# ids in the scene below: participants 1 Ana, 2 Bea (pair 1), 3 Cal, 4 Dee (free);
# staff users 1 nurse, 2 staff, 3 admin; message 1 from Ana; attention flag 1 on pair 1
AUDITED = [
    Audited(
        "POST",
        "/api/v1/auth/token",
        "nurse",
        Action.SIGN_IN,
        "staff_user:1",
        form={"username": "nurse@clinic.example.org", "password": "nurse-password-long"},
    ),
    Audited("GET", "/api/v1/participants", "nurse", Action.PARTICIPANTS_READ, "4 participants"),
    Audited(
        "POST",
        "/api/v1/participants",
        "staff",
        Action.PARTICIPANT_CREATE,
        "participant:5",
        body={"name": "Eve", "phone": "+16175550105", "timezone": "America/New_York"},
    ),
    Audited("GET", "/api/v1/participants/1", "nurse", Action.PARTICIPANT_READ, "participant:1"),
    Audited(
        "PATCH",
        "/api/v1/participants/1",
        "staff",
        Action.PARTICIPANT_UPDATE,
        "participant:1",
        body={"quiet_hours": "22:00-08:00"},
    ),
    Audited("DELETE", "/api/v1/participants/2", "staff", Action.PARTICIPANT_DELETE, "participant:2"),
    Audited("GET", "/api/v1/pairs", "nurse", Action.PAIRS_READ, "1 pairs"),
    Audited("POST", "/api/v1/pairs", "staff", Action.PAIR_CREATE, "pair:2", body={"participant_ids": [3, 4]}),
    Audited("GET", "/api/v1/pairs/1", "nurse", Action.PAIR_READ, "pair:1"),
    Audited("POST", "/api/v1/pairs/1/end", "staff", Action.PAIR_END, "pair:1"),
    Audited("GET", "/api/v1/pairs/1/stats", "nurse", Action.STATS_READ, "pair:1"),
    Audited("GET", "/api/v1/stats", "nurse", Action.STATS_READ, "programme"),
    Audited("GET", "/api/v1/stats/engagement", "nurse", Action.ENGAGEMENT_READ, "programme"),
    Audited("GET", "/api/v1/pairs/1/engagement", "nurse", Action.ENGAGEMENT_READ, "pair:1"),
    Audited("GET", "/api/v1/calls?pair_id=1", "nurse", Action.CALLS_READ, "pair:1"),
    Audited("GET", "/api/v1/export/calls.csv", "staff", Action.EXPORT_CALLS, "calls.csv"),
    Audited("GET", "/api/v1/attention", "nurse", Action.ATTENTION_READ, "1 pairs"),
    Audited(
        "POST",
        "/api/v1/attention/1/clear",
        "staff",
        Action.ATTENTION_CLEAR,
        "pair:1",
        body={"note": "called Ana"},
    ),
    Audited("GET", "/api/v1/messages", "nurse", Action.MESSAGES_READ, "1 messages"),
    Audited("POST", "/api/v1/messages/1/handle", "nurse", Action.MESSAGE_HANDLE, "message:1"),
    Audited("GET", "/api/v1/messages/1/recording", "nurse", Action.MESSAGE_LISTEN, "message:1"),
    Audited("GET", "/api/v1/audit", "admin", Action.AUDIT_READ, None),
    Audited("GET", "/api/v1/users", "admin", Action.USERS_READ, "3 users"),
    Audited(
        "POST",
        "/api/v1/users",
        "admin",
        Action.USER_CREATE,
        "staff_user:4",
        body={"email": "new@clinic.example.org", "password": "a-long-password", "role": "nurse"},
    ),
    Audited("PATCH", "/api/v1/users/1", "admin", Action.USER_UPDATE, "staff_user:1", body={"role": "staff"}),
    Audited("POST", "/api/v1/users/1/sign-out-everywhere", "admin", Action.USER_SIGN_OUT, "staff_user:1"),
    Audited(
        "POST",
        "/api/v1/auth/password",
        "nurse",
        Action.PASSWORD_CHANGE,
        "staff_user:1",
        body={"current_password": "nurse-password-long", "new_password": "a new phrase for the nurse"},
    ),
    Audited("POST", "/api/v1/auth/sign-out-everywhere", "nurse", Action.SIGN_OUT_EVERYWHERE, "staff_user:1"),
    Audited("GET", "/api/v1/me", "nurse", Action.ME_READ, "staff_user:1"),
    Audited(
        "PUT", "/api/v1/me/phone", "nurse", Action.ME_PHONE, "staff_user:1", body={"phone": "+16175550107"}
    ),
    Audited("PUT", "/api/v1/me/digest", "nurse", Action.ME_DIGEST, "staff_user:1", body={"hour": 7}),
    Audited("POST", "/api/v1/participants/1/call", "nurse", Action.OUTREACH_CALL, "participant:1"),
    Audited("GET", "/api/v1/notices", "admin", Action.NOTICES_READ, "notices"),
    Audited(
        "POST",
        "/api/v1/notices",
        "admin",
        Action.NOTICE_CREATE,
        "notice:v9",
        body={"version": "v9", "texts": {"en": "Talk to your doctor first.", "es": "Hable con su médico."}},
    ),
    Audited("POST", "/api/v1/notices/v8/activate", "admin", Action.NOTICE_ACTIVATE, "notice:v8"),
    Audited("GET", "/api/v1/prompt-audio", "admin", Action.NOTICES_READ, "prompt audio"),
    Audited(
        "PUT",
        "/api/v1/prompt-audio",
        "admin",
        Action.PROMPT_AUDIO_LINK,
        "prompt:greeting:es",
        body={"prompt": "greeting", "language": "es", "url": "https://audio.example.org/hola.mp3"},
    ),
    Audited(
        "DELETE",
        "/api/v1/prompt-audio/greeting/en",
        "admin",
        Action.PROMPT_AUDIO_UNLINK,
        "prompt:greeting:en",
    ),
]


@pytest.fixture
def scene(
    app: FastAPI,
    settings: Settings,
    staff: Staff,
    programme: Programme,
    ana_and_bea: tuple[int, int, int],
    fake_twilio_server: ServerThread,
) -> Programme:
    app.state.context.settings = settings.model_copy(update={"twilio_api_url": fake_twilio_server.url})
    programme.enrol("Cal", "+16175550103")
    programme.enrol("Dee", "+16175550104")
    at = datetime(2026, 11, 10, tzinfo=UTC)
    with programme.session() as s:
        s.add(
            CareTeamMessage(
                recording_sid="RE" + "0" * 32, participant_id=1, duration_seconds=30, received_at=at
            )
        )
        s.add(AttentionFlag(pair_id=1, period_start=at, reason="no contact for 2 weeks", raised_at=at))
        # the nurse's own phone, rung first by an outreach call
        nurse = s.scalar(select(StaffUser).where(StaffUser.email == "nurse@clinic.example.org"))
        assert nurse is not None
        nurse.phone_ciphertext = programme.vault.encrypt("+16175550107")
        # a draft notice to activate and a recording to unlink
        texts = {"en": "Do not change your treatment.", "es": "No cambie su tratamiento."}
        notices.create_draft(s, version="v8", texts=texts, actor="admin@clinic.example.org", now=at)
        notices.set_audio(
            s,
            prompt="greeting",
            language="en",
            url="https://audio.example.org/hello.mp3",
            actor="admin@clinic.example.org",
            now=at,
        )
        s.commit()
    return programme


def _new_events(programme: Programme, before: int) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.actor, e.action, e.target, e.client_ip) for e in programme.rows(AuditEvent)[before:]]


@pytest.mark.parametrize("case", AUDITED, ids=[f"{c.method} {c.path}" for c in AUDITED])
def test_each_endpoint_writes_exactly_its_audit_row(
    client: TestClient, staff: Staff, scene: Programme, case: Audited
) -> None:
    before = len(scene.rows(AuditEvent))
    headers = {} if case.form is not None else staff[case.role]
    response = client.request(case.method, case.path, json=case.body, data=case.form, headers=headers)
    assert 200 <= response.status_code < 300, response.text
    assert _new_events(scene, before) == [
        (f"{case.role}@clinic.example.org", str(case.action), case.target, "testclient")
    ]


def test_the_table_covers_every_api_endpoint(app: FastAPI) -> None:
    endpoints = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }
    covered = {
        (method, template)
        for method, template in endpoints
        for case in AUDITED
        if case.route[0] == method and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), case.route[1])
    }
    assert endpoints - covered == set(), "endpoints with no audit expectation"
    assert len(AUDITED) == len(endpoints)


def test_a_failed_sign_in_is_audited_and_survives_the_refusal(
    client: TestClient, staff: Staff, programme: Programme
) -> None:
    before = len(programme.rows(AuditEvent))
    refused = client.post(
        "/api/v1/auth/token", data={"username": "Nurse@Clinic.example.org", "password": "not the password"}
    )
    assert refused.status_code == 401
    assert _new_events(programme, before) == [
        ("nurse@clinic.example.org", str(Action.SIGN_IN_FAILED), "wrong email or password", "testclient")
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "role", "status"),
    [
        ("GET", "/api/v1/participants/99", None, "nurse", 404),
        ("POST", "/api/v1/pairs", {"participant_ids": [1, 3]}, "staff", 409),
        # the name is set before the time zone is found wrong: the rollback must undo it
        ("PATCH", "/api/v1/participants/2", {"name": "Changed", "timezone": "Mars/Base"}, "staff", 422),
        ("PATCH", "/api/v1/users/3", {"disabled": True}, "admin", 409),
        ("GET", "/api/v1/audit", None, "nurse", 403),
    ],
)
def test_a_refused_request_changes_nothing_and_audits_nothing(
    client: TestClient,
    staff: Staff,
    scene: Programme,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    role: str,
    status: int,
) -> None:
    """The session dependency rolls the request back on error: no half-made change, no audit row."""
    before = len(scene.rows(AuditEvent))
    pairs = len(scene.rows(Pair))
    response = client.request(method, path, json=body, headers=staff[role])
    assert response.status_code == status and response.json()["detail"]
    assert _new_events(scene, before) == []
    assert len(scene.rows(Pair)) == pairs
    assert scene.get(Participant, 2).name == "Bea"


# ---------------------------------------------------------------- the command line


runner = CliRunner()


@pytest.fixture
def cli_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-cli-test-secret-key")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    settings_module.get_settings.cache_clear()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    for name, number in (("Ana", "6175550101"), ("Bea", "6175550102")):
        assert runner.invoke(cli, ["participant", "add", "--name", name, "--phone", number]).exit_code == 0
    assert runner.invoke(cli, ["pair", "add", "1", "2"]).exit_code == 0
    return url


def _cli_events(url: str) -> list[tuple[str, str, str | None, str | None]]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            rows = s.scalars(select(AuditEvent).order_by(AuditEvent.id))
            return [(e.actor, e.action, e.target, e.client_ip) for e in rows]
    finally:
        engine.dispose()


CLI_AUDITED: list[tuple[list[str], Action, str]] = [
    (
        ["participant", "add", "--name", "Cal", "--phone", "6175550103"],
        Action.PARTICIPANT_CREATE,
        "participant:3",
    ),
    (["pair", "add", "1", "2"], Action.PAIR_CREATE, "pair:2"),
    (["participant", "list"], Action.PARTICIPANTS_READ, "2 participants"),
    (["pair", "list"], Action.PAIRS_READ, "1 pairs"),
    (["calls", "--pair", "1"], Action.CALLS_READ, "pair:1"),
    (["calls"], Action.CALLS_READ, "all"),
    (["pair", "end", "1"], Action.PAIR_END, "pair:1"),
    (["participant", "remove", "2", "--yes"], Action.PARTICIPANT_DELETE, "participant:2"),
    (
        ["user", "add", "n@clinic.example.org", "--role", "nurse", "--password-stdin"],
        Action.USER_CREATE,
        "staff_user:1",
    ),
]


@pytest.mark.parametrize(
    ("args", "action", "target"), CLI_AUDITED, ids=[" ".join(a[:2]) for a, _, _ in CLI_AUDITED]
)
def test_each_cli_command_audits_as_the_system(
    cli_database: str, args: list[str], action: Action, target: str
) -> None:
    if args[:2] == ["pair", "add"]:
        assert runner.invoke(cli, ["pair", "end", "1"]).exit_code == 0
    before = len(_cli_events(cli_database))
    result = runner.invoke(cli, args, input="a-long-password\n")
    assert result.exit_code == 0, result.output
    assert _cli_events(cli_database)[before:] == [(SYSTEM, str(action), target, "cli")]


def test_a_refused_cli_command_changes_nothing_and_audits_nothing(cli_database: str) -> None:
    before = _cli_events(cli_database)
    # answering "no" is not an error (exit 0), and removes and audits nothing either
    assert runner.invoke(cli, ["participant", "remove", "2"], input="n\n").exit_code == 0
    for args, stdin in (
        (["pair", "add", "1", "2"], ""),
        (["calls", "--pair", "9"], ""),
        (["user", "add", "n@clinic.example.org", "--role", "nurse", "--password-stdin"], "short\n"),
    ):
        assert runner.invoke(cli, args, input=stdin).exit_code == 2
    assert _cli_events(cli_database) == before
    listed = runner.invoke(cli, ["participant", "list"]).output
    assert "Bea\tactive\tpair 1" in listed
