"""Removal on request erases every derivative of the number: a scan of every table and column
afterwards finds neither the number, nor its ciphertext, nor any blind index tied to her calls.

Made through each way staff remove someone (API, console, command line), on each database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.crypto import PhoneVault
from app.models import Base, Call, KeyedIdFailure, Participant, Reminder
from app.simulator.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import ANA, BEA, SECRET, STRANGER, FakeClock, Programme, Staff
from tests.figures import database_name, record_figures

Pairing = tuple[int, int, int]


def every_value(programme: Programme) -> Iterator[tuple[str, str, object]]:
    """(table, column, value) for every non-empty cell of every table."""
    with programme.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        yield table.name, column, value


def traces(programme: Programme, needles: dict[str, str | bytes]) -> list[str]:
    """Where any of the needles (text or bytes) still appears, as 'table.column: which'."""
    found = []
    for table, column, value in every_value(programme):
        raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
        digits = re.sub(rb"\D", b"", raw)
        for name, needle in needles.items():
            wanted = needle if isinstance(needle, bytes) else needle.encode()
            if wanted in raw or (name == "number" and wanted[2:] in digits):
                found.append(f"{table}.{column}: {name}")
    return found


@pytest.fixture
def her_history(
    programme: Programme, phone: Telephone, clock: FakeClock, ana_and_bea: Pairing, vault: PhoneVault
) -> dict[str, str | bytes]:
    """Ana's traces: calls she made from home and from a neighbour's phone (after a wrong
    number), a call she received, a lockout row under her own number, a reminder."""
    ana_id, _, pair_id = ana_and_bea
    phone.call(ANA, Scripted(talk_seconds=120), Scripted(["1"]))
    clock.advance(hours=1)
    phone.call(BEA, Scripted(talk_seconds=90), Scripted(["1"]))
    clock.advance(hours=1)
    # from the neighbour's phone: one wrong number, then hers
    phone.call(STRANGER, Scripted(["6175550188#", "6175550101#"], talk_seconds=70), Scripted(["1"]))
    clock.advance(hours=1)
    with programme.session() as s:
        ana = s.get(Participant, ana_id)
        assert ana is not None and ana.phone_ciphertext is not None and ana.phone_index is not None
        # a wrong keyed number from her own phone (as while she was not recognised)
        s.add(KeyedIdFailure(caller_index=ana.phone_index, call_sid="CA" + "7" * 32, at=clock()))
        s.add(
            Reminder(
                participant_id=ana_id,
                pair_id=pair_id,
                period_start=datetime(2026, 11, 24, tzinfo=UTC),
                state="pending",
                attempts=0,
                next_attempt_at=datetime(2026, 11, 24, tzinfo=UTC),
                created_at=clock(),
                updated_at=clock(),
            )
        )
        s.commit()
        needles: dict[str, str | bytes] = {
            "number": ANA,
            "ciphertext": bytes(ana.phone_ciphertext),
            "index": ana.phone_index,
            "neighbour's index on her call": vault.blind_index(STRANGER),
        }
    # the scene is what the test means it to be: her index is on calls and in the lockout table
    before = traces(programme, needles)
    record_figures("removal-traces-before", {"traces": len(before), "where": sorted(set(before))})
    assert "call.caller_index: index" in before and "keyed_id_failure.caller_index: index" in before
    assert "call.caller_index: neighbour's index on her call" in before
    assert "keyed_id_failure.caller_index: neighbour's index on her call" in before
    assert "participant.phone_ciphertext: ciphertext" in before
    return needles


def remove_by_api(client: TestClient, staff: Staff, participant_id: int) -> None:
    response = client.delete(f"/api/v1/participants/{participant_id}", headers=staff["staff"])
    assert response.status_code == 200 and response.json()["phone"] is None


def remove_by_console(app: FastAPI, participant_id: int) -> None:
    # the session cookie is Secure because PUBLIC_BASE_URL is https: so is this client
    client = TestClient(app, base_url="https://testserver")
    login = client.get("/console/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf is not None
    client.post(
        "/console/login",
        data={"email": "staff@clinic.example.org", "password": "staff-password-long", "csrf_token": csrf[1]},
    )
    confirm = client.get(f"/console/participants/{participant_id}/remove")
    assert confirm.status_code == 200 and "Every trace of the number" in confirm.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    assert csrf is not None
    done = client.post(f"/console/participants/{participant_id}/remove", data={"csrf_token": csrf[1]})
    assert done.status_code == 200 and "withdrawn" in done.text


def remove_by_cli(database_url: str, participant_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    settings_module.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["participant", "remove", str(participant_id), "--yes"])
    finally:
        settings_module.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "every trace" in result.output


@pytest.mark.parametrize("channel", ["api", "console", "cli"])
def test_removal_leaves_no_trace_of_the_number_in_any_table_or_column(
    channel: str,
    client: TestClient,
    staff: Staff,
    phone: Telephone,
    programme: Programme,
    ana_and_bea: Pairing,
    her_history: dict[str, str | bytes],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ana_id = ana_and_bea[0]
    calls_before = [(c.id, c.started_at, c.outcome, c.duration_seconds) for c in programme.rows(Call)]
    if channel == "api":
        remove_by_api(client, staff, ana_id)
    elif channel == "console":
        remove_by_console(client.app, ana_id)  # type: ignore[arg-type]
    else:
        remove_by_cli(database_url, ana_id, monkeypatch)

    left = traces(programme, her_history)
    assert left == []
    record_figures(
        f"removal-{channel}-{database_name(database_url)}",
        {"cells_scanned": sum(1 for _ in every_value(programme)), "traces_left": len(left)},
    )
    # the de-identified history stays, whole
    calls_after = [(c.id, c.started_at, c.outcome, c.duration_seconds) for c in programme.rows(Call)]
    assert calls_after == calls_before
    assert {c.initiator_id for c in programme.rows(Call)} >= {ana_id}
    assert {r.state for r in programme.rows(Reminder) if r.participant_id == ana_id} == {"cancelled"}
    ana = programme.get(Participant, ana_id)
    assert (ana.status, ana.phone_ciphertext, ana.phone_index, ana.name) == ("withdrawn", None, None, "Ana")


def test_a_call_from_the_number_afterwards_is_an_unknown_caller_and_links_to_nothing(
    client: TestClient,
    staff: Staff,
    phone: Telephone,
    programme: Programme,
    ana_and_bea: Pairing,
    her_history: dict[str, str | bytes],
    vault: PhoneVault,
) -> None:
    ana_id = ana_and_bea[0]
    remove_by_api(client, staff, ana_id)
    her_calls = {c.id for c in programme.rows(Call) if ana_id in (c.initiator_id, c.callee_id)}

    caller = Scripted(["6175550101#"])
    record = phone.call(ANA, caller)

    assert prompts.ASK_HOME_NUMBER in caller.heard[:3] and prompts.NUMBER_NOT_FOUND in caller.text
    new = programme.call(record.sid)
    assert new.initiator_id is None and new.pair_id is None
    # whatever the new call keeps for the lockout, none of her calls carries it
    index = vault.blind_index(ANA)
    assert [c.id for c in programme.rows(Call) if c.caller_index == index] == [new.id]
    assert all(c.caller_index is None for c in programme.rows(Call) if c.id in her_calls)
    listed = client.get(f"/api/v1/calls?participant_id={ana_id}", headers=staff["staff"]).json()["items"]
    assert {c["id"] for c in listed} == her_calls
