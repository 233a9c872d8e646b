"""Several processes at once: two `peerline reminders run`, and two `peerline serve` with schedulers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.db import make_engine
from app.services import participants
from app.settings import Settings
from app.simulator.fake_twilio import FakeTwilio
from tests.conftest import PG_URL, ServerThread, free_port, new_pg_database, reminder_hours_open_now

BIN = Path(sys.executable).parent
PEERLINE = str(BIN / "peerline")
NUMBERS = [f"+1617555{n:04d}" for n in range(140, 152)]  # six pairs


@pytest.fixture(params=["sqlite", "postgresql"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, fake_twilio_server: ServerThread
) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/procs.db"
    else:
        if not PG_URL:
            pytest.skip("TEST_DATABASE_URL not set")
        url = new_pg_database("procs")
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "process-test-secret-key-process-test-secret",
        "TWILIO_AUTH_TOKEN": "process-test-token",
        "TWILIO_PHONE_NUMBER": "+18005550100",
        "TWILIO_API_URL": fake_twilio_server.url,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "REMINDER_HOURS": reminder_hours_open_now(),
        "SCHEDULER_ENABLED": "false",
    }
    subprocess.run(
        [PEERLINE, "db", "upgrade"], env=environment, cwd=tmp_path, check=True, capture_output=True
    )
    engine = make_engine(Settings(database_url=url).database_url)
    vault = PhoneVault.from_secret(environment["SECRET_KEY"])
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    with Session(engine) as db:
        ids = [
            participants.enrol(
                db, vault, name=f"P{i}", phone=number, timezone="UTC", quiet_hours=None, now=eight_days_ago
            ).id
            for i, number in enumerate(NUMBERS)
        ]
        for a, b in zip(ids[::2], ids[1::2], strict=True):
            participants.make_pair(db, a, b, now=eight_days_ago)
        db.commit()
    engine.dispose()
    yield environment


def test_two_reminder_runs_started_together_place_each_reminder_once(
    env: dict[str, str], fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    runs = [
        subprocess.Popen(
            [PEERLINE, "reminders", "run"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=60) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    _one_partner_of_each_pair(fake_twilio)
    placed = sum(int(out.split("placed ")[1].split(",")[0]) for out, _ in outputs)
    assert placed == len(NUMBERS) // 2


def test_two_servers_with_schedulers_place_each_reminder_once(
    env: dict[str, str], fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    servers = []
    for port in (free_port(), free_port()):
        servers.append(
            subprocess.Popen(
                [PEERLINE, "serve", "--port", str(port)],
                env={**env, "SCHEDULER_ENABLED": "true"},
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        deadline = time.monotonic() + 30
        while len(fake_twilio.calls) < len(NUMBERS) // 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # room for a doubled call to show up
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    _one_partner_of_each_pair(fake_twilio)


def _one_partner_of_each_pair(fake: FakeTwilio) -> None:
    """Each reminder once, and one partner of each pair: the other waits while that call is live."""
    called = [c.to for c in fake.calls]
    assert len(called) == len(set(called)) == len(NUMBERS) // 2
    assert all((a in called) != (b in called) for a, b in zip(NUMBERS[::2], NUMBERS[1::2], strict=True))
