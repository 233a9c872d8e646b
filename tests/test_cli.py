"""The command line: what it prints, and one readable line with exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli

runner = CliRunner()


@pytest.fixture(autouse=True)
def _database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-cli-test-secret-key")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    settings_module.get_settings.cache_clear()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0


def add(name: str, phone: str, *extra: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["participant", "add", "--name", name, "--phone", phone, *extra])
    return result.exit_code, result.output


def test_participant_add_prints_the_new_id_on_the_last_line() -> None:
    code, out = add("Ana", "(617) 555-0101", "--timezone", "America/New_York", "--quiet-hours", "21:00-09:00")
    assert code == 0
    assert out.strip().splitlines()[-1] == "1"


def test_participant_add_json_prints_the_whole_record() -> None:
    _, out = add("Ana", "617 555 0101", "--json")
    record = json.loads(out)
    assert record["phone"] == "+16175550101" and record["status"] == "active"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phone", "12345"], "phone"),
        (["--phone", "617 555 0101", "--timezone", "Mars/Base"], "timezone"),
        (["--phone", "617 555 0101", "--quiet-hours", "late"], "--quiet-hours"),
    ],
)
def test_participant_add_rejects_bad_input_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["participant", "add", "--name", "X", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_enrolling_the_same_number_twice_is_refused() -> None:
    add("Ana", "617 555 0101")
    code, out = add("Ana again", "+1 617-555-0101")
    assert code == 2 and "already enrolled" in out


def test_pair_add_and_its_refusals() -> None:
    for name, number in (("Ana", "6175550101"), ("Bea", "6175550102"), ("Cal", "6175550103")):
        add(name, number)
    ok = runner.invoke(cli, ["pair", "add", "1", "2"])
    assert ok.exit_code == 0 and ok.output.strip().splitlines()[-1] == "1"
    for args, message in (
        (["1", "3"], "already in pair"),
        (["3", "3"], "themselves"),
        (["3", "9"], "does not exist"),
    ):
        result = runner.invoke(cli, ["pair", "add", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_help_lists_the_commands() -> None:
    out = runner.invoke(cli, ["--help"]).output
    for command in ("db", "serve", "participant", "pair", "phone"):
        assert command in out


def test_operator_commands_list_remove_end_and_show_calls() -> None:
    for name, number in (("Ana", "6175550101"), ("Bea", "6175550102")):
        add(name, number)
    runner.invoke(cli, ["pair", "add", "1", "2"])

    listed = runner.invoke(cli, ["participant", "list"]).output
    assert "Ana" in listed and "pair 1 with Bea (#2)" in listed and "555" not in listed
    assert "Ana (#1) & Bea (#2)" in runner.invoke(cli, ["pair", "list", "--active"]).output
    assert runner.invoke(cli, ["calls", "--pair", "1"]).exit_code == 0
    missing = runner.invoke(cli, ["calls", "--pair", "9"])
    assert missing.exit_code == 2 and "pair 9 does not exist" in missing.output

    declined = runner.invoke(cli, ["participant", "remove", "2"], input="n\n")
    assert declined.exit_code == 0 and declined.output.strip().endswith("nothing was removed")
    removed = runner.invoke(cli, ["participant", "remove", "2", "--yes"])
    assert removed.exit_code == 0 and "now withdrawn" in removed.output
    assert "withdrawn\tno pair" in runner.invoke(cli, ["participant", "list"]).output
    assert "ended" in runner.invoke(cli, ["pair", "list"]).output
    assert runner.invoke(cli, ["pair", "end", "1"]).exit_code == 0  # ending twice is harmless


def test_user_add_reads_the_password_from_stdin_and_checks_it() -> None:
    ok = runner.invoke(
        cli,
        ["user", "add", "Nurse@Clinic.example.org", "--role", "nurse", "--password-stdin"],
        input="a-good-long-password\n",
    )
    assert ok.exit_code == 0 and ok.output.strip().splitlines()[-1] == "1"
    short = runner.invoke(
        cli, ["user", "add", "b@clinic.example.org", "--role", "nurse", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    role = runner.invoke(
        cli,
        ["user", "add", "c@clinic.example.org", "--role", "doctor", "--password-stdin"],
        input="a-good-long-password\n",
    )
    assert role.exit_code == 2 and "role" in role.output
    twice = runner.invoke(
        cli,
        ["user", "add", "nurse@clinic.example.org", "--role", "nurse", "--password-stdin"],
        input="a-good-long-password\n",
    )
    assert twice.exit_code == 2 and "exists already" in twice.output


def test_user_add_checks_the_password_before_asking_for_it_a_second_time() -> None:
    result = runner.invoke(
        cli,
        ["user", "add", "nurse@clinic.example.org", "--role", "nurse"],
        input="Password2024!\na quiet walk by the river\na quiet walk by the river\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Repeat the password") == 1, "the common password was refused at once"
    assert "commonly used password" in result.output
    assert result.output.strip().splitlines()[-1] == "1"
    given_up = runner.invoke(
        cli, ["user", "add", "b@clinic.example.org", "--role", "nurse"], input="short\n" * 3
    )
    assert given_up.exit_code == 2 and "no acceptable password" in given_up.output
    assert "Repeat the password" not in given_up.output


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 12 characters"),
        ("x" * 129, "at most 128 characters"),
        ("p@ssw0rd2024", "commonly used password"),
        ("123456789012", "repeats itself or follows the keyboard"),
        ("nurse@clinic.example.org", "your email address"),
    ],
)
def test_user_add_refuses_weak_passwords_from_stdin(password: str, message: str) -> None:
    result = runner.invoke(
        cli,
        ["user", "add", "nurse@clinic.example.org", "--role", "nurse", "--password-stdin"],
        input=password + "\n",
    )
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_user_list_disable_and_reset_password() -> None:
    for email, role in (("admin@clinic.example.org", "admin"), ("nurse@clinic.example.org", "nurse")):
        added = runner.invoke(
            cli,
            ["user", "add", email, "--role", role, "--password-stdin"],
            input="a quiet walk by the river\n",
        )
        assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["user", "list"])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert [line.split("\t")[:4] for line in lines] == [
        ["ID", "EMAIL", "ROLE", "STATUS"],
        ["1", "admin@clinic.example.org", "admin", "active"],
        ["2", "nurse@clinic.example.org", "nurse", "active"],
    ]

    reset = runner.invoke(
        cli,
        ["user", "reset-password", "NURSE@clinic.example.org", "--password-stdin"],
        input="another long phrase here\n",
    )
    assert reset.exit_code == 0 and "sessions and tokens have ended" in reset.output
    weak = runner.invoke(
        cli, ["user", "reset-password", "nurse@clinic.example.org", "--password-stdin"], input="iloveyou\n"
    )
    assert weak.exit_code == 2 and "at least 12 characters" in weak.output

    disabled = runner.invoke(cli, ["user", "disable", "nurse@clinic.example.org"])
    assert disabled.exit_code == 0 and "disabled account 2" in disabled.output
    assert "\tdisabled " in runner.invoke(cli, ["user", "list"]).output.splitlines()[2]

    for command in (
        ["user", "disable", "nobody@clinic.example.org"],
        ["user", "reset-password", "nobody@x.org"],
    ):
        missing = runner.invoke(cli, command, input="another long phrase here\n")
        assert missing.exit_code == 2 and "does not exist" in missing.output


def test_user_commands_are_audited_as_the_system() -> None:
    from sqlalchemy import create_engine, select

    from app.models import AuditEvent

    runner.invoke(
        cli,
        ["user", "add", "n@clinic.example.org", "--role", "nurse", "--password-stdin"],
        input="a quiet walk by the river\n",
    )
    runner.invoke(cli, ["user", "list"])
    runner.invoke(
        cli,
        ["user", "reset-password", "n@clinic.example.org", "--password-stdin"],
        input="another long phrase here\n",
    )
    runner.invoke(cli, ["user", "disable", "n@clinic.example.org"])
    engine = create_engine(settings_module.get_settings().database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.target, AuditEvent.client_ip)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("system", "user.create", "staff_user:1", "cli"),
        ("system", "users.read", "1 accounts", "cli"),
        ("system", "user.password_reset", "staff_user:1", "cli"),
        ("system", "user.update", "staff_user:1", "cli"),
    ]
