"""`peerline phone` against a real running `peerline serve`, as a new user would use it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.models import Call
from app.simulator.telephone import Telephone
from app.simulator.terminal_phone import TerminalParty
from tests.conftest import ANA, Programme, free_port, reminder_hours_open_now

BIN = Path(sys.executable).parent


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/live.db",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        # where the service asks for the partner's leg: `peerline phone` (or `peerline
        # fake-twilio`) serves the fake Calls API there
        "TWILIO_API_URL": f"http://127.0.0.1:{free_port()}",
        "SCHEDULER_ENABLED": "false",
        "PEERLINE_DEV_SECRETS": str(tmp_path / "secrets.json"),
    }
    env.pop("SECRET_KEY", None)
    env.pop("TWILIO_AUTH_TOKEN", None)
    peerline = str(BIN / "peerline")
    subprocess.run([peerline, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=tmp_path)
    for name, number in (("Ana", "(617) 555-0101"), ("Bea", "617 555 0102")):
        subprocess.run(
            [peerline, "participant", "add", "--name", name, "--phone", number],
            env=env,
            check=True,
            capture_output=True,
            cwd=tmp_path,
        )
    subprocess.run(
        [peerline, "pair", "add", "1", "2"], env=env, check=True, capture_output=True, cwd=tmp_path
    )
    server = subprocess.Popen(
        [peerline, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_new_user_calls_their_partner_from_the_terminal(served: dict[str, str], tmp_path: Path) -> None:
    # the partner's phone rings -> the partner answers, presses 1; they talk, the
    # partner hangs up, 75 seconds; the caller is told, presses 1 and leaves a message
    keys = "\n".join(["", "1", "", "75", "1", "", ""]) + "\n"
    result = subprocess.run(
        [str(BIN / "peerline"), "phone", "--from", "+16175550101"],
        input=keys,
        env=served,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "Hello, Ana" in out
    assert "Do not change any medicine" in out
    assert "Your partner's phone is ringing" in out
    assert "Your partner hears: Your Peerline partner is calling you." in out
    assert "You hear: I am calling your partner. Please hold." in out
    assert "You hear: Your partner has hung up." in out
    assert "Your care team will get your message" in out
    assert "6175550102" not in out.replace("-", "").replace(" ", "")

    calls = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            (
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                "print(c.execute('select outcome, duration_seconds from call').fetchall());"
                "print(c.execute('select count(*) from care_team_message').fetchone()[0])"
            ),
            str(tmp_path / "live.db"),
        ],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert calls == ["[('contact', 75)]", "1"]


def test_the_terminal_party_turns_typed_lines_into_keys(
    phone: Telephone, programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    lines = iter(["", "2", "2"])  # the partner answers, then presses 2, and 2 again: declined
    caller_lines = iter(["h"])  # then the caller hangs up at the message offer
    phone.call(
        ANA,
        TerminalParty("you", lambda _p: next(caller_lines)),
        TerminalParty("partner", lambda _p: next(lines)),
    )
    (row,) = programme.rows(Call)
    assert row.outcome == "declined"


def test_a_reminder_call_rings_the_terminal_through_the_fake_twilio(
    served: dict[str, str], tmp_path: Path
) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "live.db")
    db.execute("UPDATE pair SET started_at = datetime('now', '-8 days'), next_reminder_at = NULL")
    db.commit()
    port = int(served["TWILIO_API_URL"].rsplit(":", 1)[1])  # the service places legs here too
    env = {**served, "REMINDER_HOURS": reminder_hours_open_now("America/New_York")}
    # Ana answers her reminder (Enter), presses 1; Bea's phone rings in the same terminal, she
    # answers and presses 1; they talk 90 s; Bea hangs up, Ana is told and hangs up. The
    # talk spares Bea her own reminder: the partners are reminded one after the other.
    keys = "\n".join(["", "1", "", "1", "", "90", "h"]) + "\n"
    fake = subprocess.Popen(
        [str(BIN / "peerline"), "fake-twilio", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert fake.stdin is not None
        fake.stdin.write(keys)
        fake.stdin.flush()
        run = subprocess.run(
            [str(BIN / "peerline"), "reminders", "run"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "placed 1" in run.stdout, run.stdout + run.stderr
        deadline = time.monotonic() + 30
        rows: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            rows = db.execute("SELECT outcome, kind FROM call ORDER BY id").fetchall()
            if len(rows) == 1 and all(r[0] != "in_progress" for r in rows):
                break
            time.sleep(0.2)
    finally:
        fake.terminate()
        out = fake.communicate(timeout=10)[0]
    assert "Peerline is calling" in out and "have not talked in a while" in out
    assert "Your partner's phone is ringing" in out
    assert "Your partner hears: Your Peerline partner is calling you." in out
    assert rows == [("contact", "reminder")]
    states = db.execute("SELECT state FROM reminder ORDER BY participant_id").fetchall()
    assert states == [("answered",), ("cancelled",)]
