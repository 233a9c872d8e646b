"""Peerline past one machine: three `peerline serve` processes on one PostgreSQL, 50 concurrent
signed calls spread across them request by request (any step of a call may land on any
process, as behind a load balancer without sticky sessions), and a scheduler in every
process: every call is recorded once, every reminder placed once."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.db import make_engine
from app.models import Call, Participant
from app.services import participants
from app.settings import Settings
from app.simulator.fake_twilio import FakeTwilio, PlacedCall
from app.simulator.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import PG_URL, ServerThread, free_port, new_pg_database, reminder_hours_open_now

PEERLINE = str(Path(sys.executable).parent / "peerline")
SECRET = "processes-test-secret-key-processes-test-secret"
TOKEN = "processes-test-token"
PUBLIC = "https://peerline.example.org"
PROGRAMME = "+18005550100"
CALLERS = [f"+1617555{n:04d}" for n in range(110, 160)]  # 25 pairs; everyone calls at once
QUIET = [f"+1617555{n:04d}" for n in range(160, 172)]  # 6 pairs without contact for 8 days
PROCESSES = 3

pytestmark = pytest.mark.skipif(not PG_URL, reason="several processes share one PostgreSQL")


class RoundRobin(httpx.BaseTransport):
    """A load balancer without sticky sessions: each request goes to the next process."""

    def __init__(self, ports: list[int], turn: itertools.count[int]) -> None:
        self.ports = ports
        self.turn = turn
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        port = self.ports[next(self.turn) % len(self.ports)]
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def env(tmp_path: Path, fake_twilio_server: ServerThread) -> Iterator[dict[str, str]]:
    url = new_pg_database("processes")
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_PHONE_NUMBER": PROGRAMME,
        "TWILIO_API_URL": fake_twilio_server.url,
        "PUBLIC_BASE_URL": PUBLIC,
        "REMINDER_HOURS": reminder_hours_open_now(),
        "SCHEDULER_ENABLED": "true",
        "LOG_FORMAT": "json",
    }
    subprocess.run(
        [PEERLINE, "db", "upgrade"], env=environment, cwd=tmp_path, check=True, capture_output=True
    )
    engine = make_engine(Settings(database_url=url).database_url)
    vault = PhoneVault.from_secret(SECRET)
    now = datetime.now(UTC)
    with Session(engine) as db:
        for numbers, since in ((CALLERS, now - timedelta(hours=1)), (QUIET, now - timedelta(days=8))):
            ids = [
                participants.enrol(
                    db,
                    vault,
                    name=f"P{number[-3:]}",
                    phone=number,
                    timezone="UTC",
                    quiet_hours=None,
                    now=since,
                ).id
                for number in numbers
            ]
            for a, b in zip(ids[::2], ids[1::2], strict=True):
                participants.make_pair(db, a, b, now=since)
        db.commit()
    engine.dispose()
    yield environment


def reminder_calls(fake: FakeTwilio) -> list[PlacedCall]:
    """The reminder calls placed; the partners' legs of peer calls are placed through the
    same REST API."""
    return [c for c in fake.calls if "/reminder" in c.url]


def test_three_processes_record_every_call_once_and_place_every_reminder_once(
    env: dict[str, str], fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    ports = [free_port() for _ in range(PROCESSES)]
    logs = [tmp_path / f"serve-{i}.log" for i in range(PROCESSES)]
    servers = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("w") as out:
            servers.append(
                subprocess.Popen(
                    [PEERLINE, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=out, stderr=out
                )
            )
    results: dict[str, tuple[str, Scripted]] = {}
    failures: list[BaseException] = []
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "a server did not start"
                time.sleep(0.1)

        turn = itertools.count()
        start = threading.Barrier(len(CALLERS))
        lock = threading.Lock()

        def call(number: str) -> None:
            try:
                with httpx.Client(transport=RoundRobin(ports, turn), timeout=30) as client:
                    phone = Telephone(
                        client, public_base_url=PUBLIC, auth_token=TOKEN, programme_number=PROGRAMME
                    )
                    caller = Scripted(talk_seconds=90)
                    start.wait(timeout=30)
                    record = phone.call(number, caller, Scripted(["1"]))
                with lock:
                    results[record.sid] = (number, caller)
            except BaseException as exc:
                failures.append(exc)

        began = time.monotonic()
        threads = [threading.Thread(target=call, args=(number,)) for number in CALLERS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        calls_seconds = time.monotonic() - began

        deadline = time.monotonic() + 60
        while len(reminder_calls(fake_twilio)) < len(QUIET) // 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # room for a doubled reminder to show up
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=15)

    assert not failures, failures[:3]
    assert len(results) == len(CALLERS)
    for _number, caller in results.values():
        assert prompts.APOLOGY not in caller.text, caller.text

    engine = make_engine(Settings(database_url=env["DATABASE_URL"]).database_url)
    with Session(engine) as db:
        per_sid = dict(
            db.execute(
                select(Call.twilio_call_sid, func.count())
                .where(Call.kind == "peer")
                .group_by(Call.twilio_call_sid)
            ).all()
        )
        rows = {c.twilio_call_sid: c for c in db.scalars(select(Call).where(Call.kind == "peer"))}
        who = {p.id: p for p in db.scalars(select(Participant))}
    engine.dispose()
    vault = PhoneVault.from_secret(SECRET)
    assert per_sid == dict.fromkeys(results, 1), "every call recorded exactly once"
    for sid, (number, _caller) in results.items():
        row = rows[sid]
        initiator = who[row.initiator_id] if row.initiator_id is not None else None
        assert initiator is not None and vault.decrypt(initiator.phone_ciphertext or b"") == number
        assert row.pair_id == initiator.active_pair_id and row.outcome != "in_progress"
    outcomes = Counter(str(row.outcome) for row in rows.values())

    # every reminder once, none to anyone who just called, and one partner of each quiet pair:
    # the other is called only if this call does not get through, never while it is live
    called = [c.to for c in reminder_calls(fake_twilio)]
    assert len(called) == len(set(called)) == len(QUIET) // 2
    assert all((a in called) != (b in called) for a, b in zip(QUIET[::2], QUIET[1::2], strict=True))

    # the requests really were spread: every process answered webhooks
    webhooks_per_process = []
    for log in logs:
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        webhooks_per_process.append(
            sum(
                1
                for e in entries
                if e.get("logger") == "peerline.access" and str(e["route"]).startswith("/twilio")
            )
        )
    assert all(n > 0 for n in webhooks_per_process), webhooks_per_process
    print(
        f"{len(CALLERS)} concurrent calls over {PROCESSES} processes in {calls_seconds:.1f} s; "
        f"webhooks per process {webhooks_per_process}; outcomes {dict(outcomes)}"
    )
