"""The phone line never waits: with the database refusing, hanging, slow, locked or read-only,
every webhook still answers 200 with TwiML within 3 s, health answers within 1 s, nothing
half-done is stored, and the service recovers by itself when the database returns.

Each fault is produced for real (a TCP proxy in front of PostgreSQL, a table lock, another
process holding SQLite's lock, a read-only SQLite file) while 50 signed Twilio requests
arrive at once at a real uvicorn server. The measured figures go to build/reliability.json
(copied into docs/reliability.md).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from app.crypto import PhoneVault
from app.db import make_engine
from app.models import Base, Call
from app.services import participants
from app.settings import Settings
from app.simulator.telephone import new_sid
from tests.conftest import (
    ANA,
    AUTH_TOKEN,
    BEA,
    PG_URL,
    PROGRAMME_NUMBER,
    PUBLIC_BASE_URL,
    SECRET,
    SUPPORT,
    free_port,
    new_pg_database,
    suite_settings,
)
from tests.faults import Mode, TcpProxy

CONCURRENT = 50
WEBHOOK_LIMIT = 3.0
HEALTH_LIMIT = 1.0
FIGURES = Path(__file__).resolve().parent.parent / "build" / "reliability.json"
APOLOGY = "sorry"
PEERLINE = str(Path(sys.executable).parent / "peerline")


def _steps(sid: str, child: str) -> list[tuple[str, dict[str, str]]]:
    """One request of every kind Twilio sends, for a call with this SID (its partner's leg: child)."""
    base = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "To": PROGRAMME_NUMBER}
    room = "room-" + sid[2:26]
    leg = {"CallSid": child, "AccountSid": "AC" + "0" * 32, "From": PROGRAMME_NUMBER, "To": BEA}
    conference = {"ConferenceSid": "CF" + sid[2:], "FriendlyName": room, "SequenceNumber": "1"}
    return [
        ("/twilio/voice", {**base, "From": ANA, "CallStatus": "ringing"}),
        ("/twilio/voice/identify", {**base, "From": "anonymous", "Digits": "6175550102#"}),
        ("/twilio/voice/hold", {**base, "ConferenceSid": "CF" + sid[2:]}),
        (f"/twilio/voice/whisper?room={room}", {**leg, "AnsweredBy": "human"}),
        (f"/twilio/voice/whisper-answer?room={room}", {**leg, "Digits": "1"}),
        (f"/twilio/voice/stepped-out?room={room}", {**base, "DialCallStatus": "answered"}),
        (f"/twilio/voice/away?room={room}", {**base, "Digits": "2"}),
        (f"/twilio/voice/partner-gone?room={room}", leg),
        ("/twilio/voice/message", {**base, "Digits": "1"}),
        ("/twilio/voice/message-done", {**base, "RecordingSid": "RE" + sid[2:]}),
        ("/twilio/voice/reminder", {**base, "To": ANA, "AnsweredBy": "human"}),
        ("/twilio/status", {**base, "CallStatus": "completed", "CallDuration": "95", "SequenceNumber": "3"}),
        (f"/twilio/status?room={room}", {**leg, "CallStatus": "completed", "SequenceNumber": "3"}),
        ("/twilio/conference", {**conference, "CallSid": sid, "StatusCallbackEvent": "participant-join"}),
        ("/twilio/recording", {**base, "RecordingSid": "RE" + sid[2:], "RecordingStatus": "completed"}),
        ("/twilio/fallback", {**base, "From": ANA}),
    ]


def _signed_post(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, httpx.Response]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + path, params)
    started = time.monotonic()
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)
    return time.monotonic() - started, response


def _get(client: httpx.Client, path: str) -> tuple[float, int]:
    started = time.monotonic()
    status = client.get(path, timeout=30).status_code
    return time.monotonic() - started, status


@dataclass
class Burst:
    webhook_max: float
    apologies: int
    healthz_max: float
    readyz_max: float
    readyz_statuses: list[int]
    apology_sids: list[str]


def _burst(url: str) -> Burst:
    """50 webhook requests at once, with health checks alongside."""
    requests = []
    for i in range(CONCURRENT):
        sid, child = new_sid(), new_sid()
        steps = _steps(sid, child)
        requests.append((sid, *steps[i % len(steps)]))
    with httpx.Client(base_url=url) as client, ThreadPoolExecutor(CONCURRENT + 10) as pool:
        webhooks = [pool.submit(_signed_post, client, path, params) for _sid, path, params in requests]
        health = [pool.submit(_get, client, "/healthz") for _ in range(5)]
        ready = [pool.submit(_get, client, "/readyz") for _ in range(5)]
        answers = [f.result() for f in webhooks]
        health_results = [f.result() for f in health]
        ready_results = [f.result() for f in ready]
    apology_sids = []
    for (sid, path, _params), (_seconds, response) in zip(requests, answers, strict=True):
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/xml"), path
        assert "<Response" in response.text, path
        if APOLOGY in response.text.lower() and path != "/twilio/fallback":
            apology_sids.append(sid)
    assert all(status == 200 for _s, status in health_results)
    return Burst(
        webhook_max=max(s for s, _r in answers),
        apologies=len(apology_sids) + sum(1 for _s, p, _ in requests if p == "/twilio/fallback"),
        healthz_max=max(s for s, _ in health_results),
        readyz_max=max(s for s, _ in ready_results),
        readyz_statuses=sorted({status for _s, status in ready_results}),
        apology_sids=apology_sids,
    )


def _normal_call_answers(url: str, deadline: float = 15.0) -> float:
    """Seconds until an inbound call from Ana is answered normally again."""
    started = time.monotonic()
    with httpx.Client(base_url=url) as client:
        while time.monotonic() - started < deadline:
            _s, response = _signed_post(
                client, "/twilio/voice", {"CallSid": new_sid(), "From": ANA, "To": PROGRAMME_NUMBER}
            )
            if response.status_code == 200 and APOLOGY not in response.text.lower():
                return time.monotonic() - started
            time.sleep(0.25)
    raise AssertionError("the service did not recover by itself")


def _record(name: str, how: str, burst: Burst, recovered: float, stored: str) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = {
        "how": how,
        "webhook_max_s": round(burst.webhook_max, 3),
        "apologies": burst.apologies,
        "healthz_max_s": round(burst.healthz_max, 3),
        "readyz_max_s": round(burst.readyz_max, 3),
        "readyz_status": burst.readyz_statuses,
        "recovered_s": round(recovered, 2),
        "afterwards": stored,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    FIGURES.write_text(json.dumps(figures, indent=2))


def _settings(url: str) -> Settings:
    return suite_settings(url)


def _enrol(url: str) -> None:
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    vault = PhoneVault.from_secret(SECRET)
    now = datetime.now(UTC)
    with Session(engine) as db:
        a = participants.enrol(db, vault, name="Ana", phone=ANA, timezone="UTC", quiet_hours=None, now=now)
        b = participants.enrol(db, vault, name="Bea", phone=BEA, timezone="UTC", quiet_hours=None, now=now)
        participants.make_pair(db, a.id, b.id, now=now)
        db.commit()
    engine.dispose()


def _rows_for(url: str, sids: list[str]) -> int:
    if not sids:
        return 0
    engine = create_engine(url)
    with engine.connect() as conn:
        found = len(conn.execute(select(Call.id).where(Call.twilio_call_sid.in_(sids))).all())
    engine.dispose()
    return found


@pytest.fixture(autouse=True)
def _quiet_http_clients() -> Iterator[None]:
    """The 50 test clients share this process with the server: their per-request DEBUG lines
    (httpx, httpcore) would be formatted under the GIL the server's event loop needs, and
    the figures would measure the test harness instead of the service."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@dataclass
class Service:
    url: str
    database_url: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    """`peerline serve` in a process of its own, as in production: the 60 client threads and
    the fault proxy of this test process would otherwise share one GIL with the server, and
    the figures would measure the harness instead of the service."""
    processes: list[subprocess.Popen[bytes]] = []

    def serve(database_url: str) -> Service:
        settings = _settings(database_url)
        port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": settings.public_base_url,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": PROGRAMME_NUMBER,
            "SECRET_KEY": SECRET,
            "SCHEDULER_ENABLED": "false",
            "SUPPORT_PHONE_NUMBER": SUPPORT,
            "DEMO_DATA": "false",
            "LOG_LEVEL": "WARNING",
        }
        log = (tmp_path / f"serve-{port}.log").open("wb")
        process = subprocess.Popen(
            [PEERLINE, "serve", "--port", str(port)], env=environment, cwd=tmp_path, stdout=log, stderr=log
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"peerline serve exited: {log.name}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return Service(url, database_url)
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("peerline serve did not start within 30 s")

    yield serve
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_behind_proxy() -> Iterator[tuple[TcpProxy, str, str]]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    direct = new_pg_database("faults")
    _enrol(direct)
    parsed = make_url(direct)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    through = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy, Settings(database_url=through).database_url, Settings(database_url=direct).database_url
    proxy.stop()


@pytest.mark.parametrize(
    ("mode", "how"),
    [
        (Mode.REFUSE, "TCP proxy closes every connection and resets new ones"),
        (Mode.BLACKHOLE, "TCP proxy accepts and reads, never forwards or answers"),
        (Mode.DELAY, "TCP proxy forwards every chunk after 4 s"),
    ],
)
def test_postgresql_that_fails_never_keeps_a_caller_waiting(
    pg_behind_proxy: tuple[TcpProxy, str, str], served: Callable[[str], Service], mode: Mode, how: str
) -> None:
    proxy, through, direct = pg_behind_proxy
    service = served(through)
    _normal_call_answers(service.url)  # warm: pooled connections exist, as in production
    proxy.set(mode)
    burst = _burst(service.url)
    proxy.set(Mode.FORWARD)
    recovered = _normal_call_answers(service.url)
    assert burst.webhook_max < WEBHOOK_LIMIT
    assert burst.healthz_max < HEALTH_LIMIT
    assert burst.readyz_max < HEALTH_LIMIT
    assert burst.readyz_statuses == [503]
    time.sleep(3)  # abandoned workers finish once the database answers again
    assert _rows_for(direct, burst.apology_sids) == 0
    _record(f"postgresql-{mode}", how, burst, recovered, "no row for any call that heard the apology")


def test_a_locked_call_table_never_keeps_a_caller_waiting(
    pg_behind_proxy: tuple[TcpProxy, str, str], served: Callable[[str], Service]
) -> None:
    _proxy, through, direct = pg_behind_proxy
    service = served(through)
    _normal_call_answers(service.url)
    holder = create_engine(direct)
    release = threading.Event()

    def hold_lock() -> None:
        with holder.begin() as conn:
            conn.execute(text("LOCK TABLE call IN ACCESS EXCLUSIVE MODE"))
            release.wait(30)

    locker = threading.Thread(target=hold_lock)
    locker.start()
    time.sleep(0.3)
    burst = _burst(service.url)
    release.set()
    locker.join()
    holder.dispose()
    recovered = _normal_call_answers(service.url)
    assert burst.webhook_max < WEBHOOK_LIMIT
    assert burst.healthz_max < HEALTH_LIMIT
    assert burst.readyz_statuses == [503]
    assert _rows_for(direct, burst.apology_sids) == 0
    _record(
        "postgresql-table-lock",
        "another session holds LOCK TABLE call IN ACCESS EXCLUSIVE MODE",
        burst,
        recovered,
        "no row for any call that heard the apology",
    )


# ---------------------------------------------------------------- SQLite


def _hold_sqlite_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(float(sys.argv[2]))\n",
            str(path),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    return locker


def test_sqlite_locked_by_another_process_never_keeps_a_caller_waiting(
    tmp_path: Path, served: Callable[[str], Service]
) -> None:
    url = f"sqlite:///{tmp_path}/peerline.db"
    _enrol(url)
    service = served(url)
    _normal_call_answers(service.url)
    locker = _hold_sqlite_lock(tmp_path / "peerline.db", 8)
    burst = _burst(service.url)
    locker.wait()
    recovered = _normal_call_answers(service.url)
    assert burst.webhook_max < WEBHOOK_LIMIT
    assert burst.healthz_max < HEALTH_LIMIT
    assert burst.readyz_statuses == [503]
    assert _rows_for(url, burst.apology_sids) == 0
    _record(
        "sqlite-locked",
        "another process holds BEGIN EXCLUSIVE on the database file for 8 s",
        burst,
        recovered,
        "no row for any call that heard the apology",
    )


def test_a_callback_that_waits_past_its_deadline_is_answered_in_time_and_still_recorded(
    tmp_path: Path, served: Callable[[str], Service]
) -> None:
    # nobody hears a callback's answer and Twilio never sends it again: dropping its work at
    # the deadline would lose the call's end for good
    url = f"sqlite:///{tmp_path}/peerline.db"
    _enrol(url)
    service = served(url)
    sid = new_sid()
    with httpx.Client(base_url=service.url) as client:
        _s, answer = _signed_post(
            client, "/twilio/voice", {"CallSid": sid, "From": ANA, "To": PROGRAMME_NUMBER}
        )
        assert APOLOGY not in answer.text.lower()
        locker = _hold_sqlite_lock(tmp_path / "peerline.db", 4)
        seconds, answer = _signed_post(
            client,
            "/twilio/status",
            {
                "CallSid": sid,
                "From": ANA,
                "To": PROGRAMME_NUMBER,
                "CallStatus": "completed",
                "CallDuration": "95",
            },
        )
        locker.wait()
    assert answer.status_code == 200 and "<Response" in answer.text
    assert seconds < WEBHOOK_LIMIT
    engine = create_engine(url)
    deadline = time.monotonic() + 15
    ended = None
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            ended = conn.execute(select(Call.ended_at).where(Call.twilio_call_sid == sid)).scalar_one()
        if ended is not None:
            break
        time.sleep(0.2)
    engine.dispose()
    assert ended is not None, "the call's end was lost"


def test_sqlite_read_only_never_keeps_a_caller_waiting(
    tmp_path: Path, served: Callable[[str], Service]
) -> None:
    path = tmp_path / "peerline.db"
    _enrol(f"sqlite:///{path}")
    service = served(f"sqlite:///file:{path}?mode=ro&uri=true")
    burst = _burst(service.url)
    assert burst.webhook_max < WEBHOOK_LIMIT
    assert burst.healthz_max < HEALTH_LIMIT
    assert burst.readyz_statuses == [503]
    _record(
        "sqlite-read-only",
        "the database file opened read-only (mode=ro)",
        burst,
        0.0,
        "nothing written; every voice step heard the apology",
    )


# ---------------------------------------------------------------- without the database


def test_the_fallback_url_apologises_with_the_care_team_number_and_needs_no_database(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    # a database file that does not exist in a folder that does not exist: nothing can be read
    application = create_app(_settings(f"sqlite:///{tmp_path}/missing/peerline.db"))
    params = {"CallSid": new_sid(), "From": ANA, "ErrorCode": "11200"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + "/twilio/fallback", params)
    with TestClient(application) as client:
        answer = client.post("/twilio/fallback", data=params, headers={"X-Twilio-Signature": signature})
        unsigned = client.post("/twilio/fallback", data=params)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert "sorry" in answer.text.lower() and "<Hangup" in answer.text
    assert "5, 5, 5, 0, 1, 7, 7" in answer.text  # the care-team number, digit by digit
    assert unsigned.status_code == 403


def test_a_huge_body_is_refused_before_it_is_read_and_a_signed_one_still_hears_twiml(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    url = f"sqlite:///{tmp_path}/peerline.db"
    _enrol(url)
    application = create_app(_settings(url))
    huge = {"CallSid": new_sid(), "From": ANA, "Junk": "x" * (2 * 1024 * 1024)}
    with TestClient(application) as client:
        signed = client.post("/twilio/voice", data=huge, headers={"X-Twilio-Signature": "anything"})
        unsigned = client.post("/twilio/voice", data=huge)
        api = client.post("/api/v1/auth/token", data={"username": "a", "password": "x" * (2 * 1024 * 1024)})

        def chunks() -> Iterator[bytes]:
            for _ in range(40):
                yield b"x" * 65536

        streamed = client.post("/api/v1/auth/token", content=chunks())
    assert signed.status_code == 200 and "<Response" in signed.text and "sorry" in signed.text.lower()
    assert unsigned.status_code == 403
    assert api.status_code == 413
    assert streamed.status_code == 413
    assert _rows_for(url, [huge["CallSid"]]) == 0
