"""`peerline db backup` during a burst of calls, and `peerline db restore` into a fresh database
that then serves the same pairs and recognises the same callers."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import Call, Pair, Participant
from app.settings import Settings
from app.simulator.telephone import Scripted, Telephone
from tests.conftest import (
    ANA,
    AUTH_TOKEN,
    CAL,
    PROGRAMME_NUMBER,
    PUBLIC_BASE_URL,
    SECRET,
    FakeClock,
    Programme,
    ServerThread,
    new_pg_database,
)

PEERLINE = str(Path(sys.executable).parent / "peerline")
CALLERS = 6
MAX_CALLS_EACH = 40


def cli_env(database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "SCHEDULER_ENABLED": "false",
    }
    return env


def peerline(database_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PEERLINE, *args], env=cli_env(database_url), cwd=cwd, capture_output=True, text=True, timeout=120
    )


def snapshot(database_url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], set[str]]:
    engine = create_engine(Settings(database_url=database_url).database_url)
    with Session(engine) as db:
        people = [(p.id, p.name, p.phone_index, p.active_pair_id) for p in db.scalars(select(Participant))]
        pairs = [(p.id, p.participant_a_id, p.participant_b_id, p.ended_at) for p in db.scalars(select(Pair))]
        sids = set(db.scalars(select(Call.twilio_call_sid)))
    engine.dispose()
    return sorted(people), sorted(pairs), sids


@pytest.fixture
def four(programme: Programme) -> None:
    ana, bea = programme.enrol("Ana", ANA), programme.enrol("Bea", "+16175550102")
    cal, dee = programme.enrol("Cal", CAL), programme.enrol("Dee", "+16175550104")
    programme.pair(ana, bea)
    programme.pair(cal, dee)


def burst(url: str, backed_up: threading.Event, made: list[str]) -> list[threading.Thread]:
    """Callers calling again and again through a real server, until the backup is done."""

    def caller(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            phone = Telephone(
                client,
                public_base_url=PUBLIC_BASE_URL,
                target_base_url=url,
                auth_token=AUTH_TOKEN,
                programme_number=PROGRAMME_NUMBER,
            )
            for _ in range(MAX_CALLS_EACH):
                if backed_up.is_set():
                    break
                record = phone.call(ANA if n % 2 else CAL, Scripted(talk_seconds=90), Scripted(["1"]))
                made.append(record.sid)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    for thread in threads:
        thread.start()
    return threads


def fresh_database(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/restored.db"
    return new_pg_database("restored")


def test_a_backup_taken_during_a_burst_of_calls_restores_into_a_working_service(
    settings: Settings, four: None, tmp_path: Path, clock: FakeClock
) -> None:
    kind = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
    if kind == "postgresql" and not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not installed")
    app = create_app(settings)
    app.state.context.clock = clock
    server = ServerThread(app)
    backup_file = tmp_path / ("peerline-backup.db" if kind == "sqlite" else "peerline.dump")
    made: list[str] = []
    backed_up = threading.Event()
    try:
        threads = burst(server.url, backed_up, made)
        while len(made) < CALLERS and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        before = len(made)
        started = time.monotonic()
        in_flight_at_start = sum(t.is_alive() for t in threads)
        taken = peerline(settings.database_url, "db", "backup", str(backup_file), cwd=tmp_path)
        assert taken.returncode == 0, taken.stderr
        if kind == "postgresql":
            # the command printed is the whole of it: no password, and it runs as printed
            command = taken.stdout.strip().splitlines()[-1]
            assert command.startswith("pg_dump ") and "password" not in command.lower()
            subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=120)
        backup_seconds = time.monotonic() - started
        during = len(made)
        in_flight_at_end = sum(t.is_alive() for t in threads)
        backed_up.set()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        backed_up.set()
        server.stop()
        app.state.engine.dispose()
        app.state.phone_engine.dispose()
    # calls were answered while the backup ran: it was taken from a service under load
    # calls were in flight from before the backup began until after it ended: it was taken
    # from a service under load
    assert in_flight_at_start and in_flight_at_end, "the backup did not overlap the burst"
    assert before <= during
    print(f"backup of {kind} during a burst: {backup_seconds:.2f} s, {during - before} calls meanwhile")

    people, pairs, sids = snapshot(settings.database_url)
    target = fresh_database(kind, tmp_path)
    assert peerline(target, "db", "upgrade", cwd=tmp_path).returncode == 0
    restored = peerline(target, "db", "restore", str(backup_file), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr

    people_after, pairs_after, sids_after = snapshot(target)
    assert (people_after, pairs_after) == (people, pairs)
    # a consistent snapshot from the middle of the burst: calls made by then, none invented
    assert sids_after <= sids and len(sids_after) >= before

    # the restored database serves: the same callers recognised, by caller ID and keyed number
    restored_settings = settings.model_copy(
        update={"database_url": Settings(database_url=target).database_url}
    )
    restored_app = create_app(restored_settings)
    restored_app.state.context.clock = clock
    with TestClient(restored_app) as client:
        phone = Telephone(
            client,
            public_base_url=PUBLIC_BASE_URL,
            target_base_url="http://testserver",
            auth_token=AUTH_TOKEN,
            programme_number=PROGRAMME_NUMBER,
        )
        for number, name in ((ANA, "Ana"), (CAL, "Cal")):
            caller = Scripted(talk_seconds=70)
            record = phone.call(number, caller, Scripted(["1"]))
            assert f"Hello, {name}" in caller.text
        keyed = Scripted(["6175550102#"])
        phone.call("anonymous", keyed, Scripted(answers=False))
        assert "Hello, Bea" in keyed.text
    restored_app.state.engine.dispose()
    restored_app.state.phone_engine.dispose()
    assert record.sid in snapshot(target)[2]

    # a database that now holds data is not overwritten by accident
    again = peerline(target, "db", "restore", str(backup_file), cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "--force" in again.stderr
    forced = peerline(target, "db", "restore", str(backup_file), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert snapshot(target)[1] == pairs


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/one.db"
    assert peerline(url, "db", "upgrade", cwd=tmp_path).returncode == 0
    yield url


def test_backup_errors_are_one_line(sqlite_db: str, tmp_path: Path) -> None:
    missing = peerline(f"sqlite:///{tmp_path}/none.db", "db", "backup", str(tmp_path / "b.db"), cwd=tmp_path)
    assert missing.returncode == 2 and "no database file" in missing.stderr
    assert missing.stderr.strip().count("\n") == 0 and "Traceback" not in missing.stderr

    assert peerline(sqlite_db, "db", "backup", str(tmp_path / "b.db"), cwd=tmp_path).returncode == 0
    exists = peerline(sqlite_db, "db", "backup", str(tmp_path / "b.db"), cwd=tmp_path)
    assert exists.returncode == 2 and "--force" in exists.stderr
    assert (
        peerline(sqlite_db, "db", "backup", str(tmp_path / "b.db"), "--force", cwd=tmp_path).returncode == 0
    )

    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    wrong = peerline(sqlite_db, "db", "restore", str(junk), cwd=tmp_path)
    assert wrong.returncode == 2 and "neither a SQLite backup nor a pg_dump archive" in wrong.stderr
    absent = peerline(sqlite_db, "db", "restore", str(tmp_path / "absent.db"), cwd=tmp_path)
    assert absent.returncode == 2 and absent.stderr.strip().count("\n") == 0


def test_postgres_backup_prints_pg_dump_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://peerline:s3cret-pass@db.example.org:5433/peerline"
    done = peerline(url, "db", "backup", str(tmp_path / "p.dump"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    command = done.stdout.strip()
    assert command == (
        f"pg_dump --format=custom --no-owner --no-privileges --file={tmp_path / 'p.dump'} "
        "--host=db.example.org --port=5433 --username=peerline --dbname=peerline"
    )
    assert "s3cret" not in done.stdout + done.stderr
