"""The command line reads well (issue 14): lists under a header, names beside ids, times with
their zone; errors in the words typed; zones that are places; a "no" that is not an error."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.models import Call, Participant
from ivr.vocab import CallKind, Outcome

runner = CliRunner()
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T")


@pytest.fixture(autouse=True)
def _database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-cli-test-secret-key")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    monkeypatch.setenv("PROGRAMME_TIMEZONE", "America/New_York")
    settings_module.get_settings.cache_clear()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0


def run(*args: str, stdin: str = "") -> tuple[int, str]:
    result = runner.invoke(cli, list(args), input=stdin)
    return result.exit_code, result.output


def enrol_ana_bea_and_cal() -> None:
    for name, number in (("Ana", "617 555 0101"), ("Bea", "617 555 0102"), ("Cal", "617 555 0103")):
        assert run("participant", "add", "--name", name, "--phone", number)[0] == 0
    assert run("pair", "add", "1", "2")[0] == 0


def database() -> Session:
    return Session(create_engine(settings_module.get_settings().database_url))


def test_participant_list_has_a_header_and_names_each_partner() -> None:
    enrol_ana_bea_and_cal()
    code, out = run("participant", "list")
    header, ana, bea, cal = out.strip().splitlines()
    assert code == 0 and header.split("\t") == [
        "ID",
        "NAME",
        "STATUS",
        "PAIR",
        "TIME ZONE",
        "QUIET HOURS",
        "LANGUAGE",
    ]
    assert ana.split("\t")[:4] == ["1", "Ana", "active", "pair 1 with Bea (#2)"]
    assert bea.split("\t")[3] == "pair 1 with Ana (#1)" and cal.split("\t")[3] == "no pair"


def test_pair_and_user_lists_give_names_and_times_with_their_zone() -> None:
    enrol_ana_bea_and_cal()
    run(
        "user",
        "add",
        "nurse@clinic.example.org",
        "--role",
        "nurse",
        "--password-stdin",
        stdin="a quiet walk by the river\n",
    )
    header, row = run("pair", "list")[1].strip().splitlines()
    assert header.split("\t") == ["ID", "PARTNERS", "SINCE", "LAST CONTACT", "STATUS"]
    pair_id, partners, since, last, status = row.split("\t")
    assert (pair_id, partners, last, status) == ("1", "Ana (#1) & Bea (#2)", "never", "active")
    assert LOCAL_TIME.fullmatch(since), since
    header, nurse = run("user", "list")[1].strip().splitlines()
    assert header.split("\t") == ["ID", "EMAIL", "ROLE", "STATUS", "CREATED"]
    assert LOCAL_TIME.fullmatch(nurse.split("\t")[4])


def test_the_call_log_names_the_caller_and_says_what_happened_in_local_time() -> None:
    enrol_ana_bea_and_cal()
    at = datetime(2026, 11, 17, 20, 0, tzinfo=UTC)
    with database() as db:
        db.add(
            Call(
                twilio_call_sid="CA" + "1" * 32,
                kind=CallKind.PEER,
                pair_id=1,
                initiator_id=1,
                callee_id=2,
                started_at=at,
                accepted_at=at + timedelta(seconds=20),
                ended_at=at + timedelta(seconds=190),
                duration_seconds=168,
                talk_seconds=168,
                outcome=Outcome.CONTACT,
            )
        )
        db.commit()
    header, row = run("calls")[1].strip().splitlines()
    assert header.split("\t") == ["ID", "STARTED", "KIND", "PAIR", "CALLER", "TALK", "WHAT HAPPENED"]
    assert row.split("\t") == [
        "1",
        "2026-11-17 15:00 EST",
        "peer",
        "1",
        "Ana (#1)",
        "2 min 48 s",
        "talked 2 min 48 s",
    ]


def test_empty_lists_say_so_in_words() -> None:
    assert run("participant", "list")[1].startswith("No participants yet")
    assert run("pair", "list", "--active")[1].strip() == "No active pairs."
    assert run("calls")[1].strip() == "No calls yet."


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--quiet-hours", "late", "must look like 21:00-09:00"),
        ("--phone", "12345", "not a valid phone number"),
        ("--timezone", "Mars/Base", "unknown time zone"),
        ("--name", " ", "must not be empty"),
    ],
)
def test_errors_name_the_option_that_was_typed(option: str, value: str, says: str) -> None:
    args = {"--name": "Ana", "--phone": "617 555 0101", option: value}
    code, out = run("participant", "add", *[x for pair in args.items() for x in pair])
    assert code == 2 and out.startswith(f"error: {option}: ") and says in out
    assert "quiet_hours" not in out and len(out.strip().splitlines()) == 1


def test_a_bad_role_names_the_option_and_a_bad_setting_has_no_pydantic_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out = run("user", "add", "x@clinic.example.org", "--role", "doctor", "--password-stdin")
    assert code == 2 and out.startswith("error: --role: ")
    monkeypatch.setenv("REMINDER_HOURS", "late")
    settings_module.get_settings.cache_clear()
    code, out = run("participant", "list")
    assert code == 2 and "REMINDER_HOURS" in out and "Value error" not in out


@pytest.mark.parametrize(
    ("given", "place"),
    [
        ("EST", "America/New_York"),
        ("EST5EDT", "America/New_York"),
        ("US/Eastern", "America/New_York"),
        ("Etc/GMT+5", "America/New_York"),
        ("MST", "America/Phoenix"),
        ("US/Pacific", "America/Los_Angeles"),
        ("HST", "Pacific/Honolulu"),
        ("Cuba", "America/Havana"),
    ],
)
def test_fixed_offset_and_alias_zones_are_refused_with_a_real_place(given: str, place: str) -> None:
    code, out = run("participant", "add", "--name", "Ana", "--phone", "617 555 0101", "--timezone", given)
    assert code == 2 and out.startswith("error: --timezone: ") and f"e.g. {place}" in out, out
    assert run("participant", "list")[1].startswith("No participants yet")


def test_places_and_utc_are_accepted() -> None:
    for i, tz in enumerate(("America/New_York", "America/Indiana/Indianapolis", "UTC")):
        code, out = run(
            "participant", "add", "--name", f"P{i}", "--phone", f"617 555 011{i}", "--timezone", tz
        )
        assert code == 0, out


def test_answering_no_to_a_removal_removes_nothing_and_is_not_an_error() -> None:
    enrol_ana_bea_and_cal()
    code, out = run("participant", "remove", "3", stdin="n\n")
    assert code == 0 and out.strip().endswith("nothing was removed") and "error" not in out
    with database() as db:
        cal = db.get(Participant, 3)
        assert cal is not None and cal.status == "active" and cal.phone_ciphertext is not None
