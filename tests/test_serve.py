"""`peerline serve` as an operator runs it: JSON logs without numbers or query strings, metrics on
METRICS_PORT, and X-Forwarded-For believed only from the proxies FORWARDED_ALLOW_IPS names."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from app.cli import uvicorn_options
from app.models import AuditEvent
from app.settings import Settings
from tests.conftest import ALL_TEST_NUMBERS, STRANGER, free_port

PEERLINE = str(Path(sys.executable).parent / "peerline")
TOKEN = "serve-test-token"
PUBLIC = "http://127.0.0.1:9"
FORGED = "203.0.113.9"


class Served:
    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [PEERLINE, "serve", "--port", str(self.port)], env=env, cwd=cwd, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"peerline serve did not start: {log.read_text()[-2000:]}")

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=15)
        return self.log.read_text()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/serve.db",
        "SECRET_KEY": "serve-test-secret-key-serve-test-secret-key",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_PHONE_NUMBER": "+18005550100",
        "PUBLIC_BASE_URL": PUBLIC,
        "SCHEDULER_ENABLED": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
    }
    environment.pop("FORWARDED_ALLOW_IPS", None)
    environment.pop("METRICS_TOKEN", None)
    environment.pop("METRICS_PORT", None)
    subprocess.run(
        [PEERLINE, "db", "upgrade"], env=environment, cwd=tmp_path, check=True, capture_output=True
    )
    return environment


@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    server = Served(env, tmp_path, tmp_path / "serve.log")
    yield server
    if server.process.poll() is None:
        server.stop()


def audit_addresses(env: dict[str, str]) -> list[str | None]:
    engine = create_engine(Settings(database_url=env["DATABASE_URL"]).database_url)
    with Session(engine) as db:
        found = list(
            db.scalars(select(AuditEvent.client_ip).where(AuditEvent.action == "auth.sign_in_failed"))
        )
    engine.dispose()
    return found


def wrong_password_from_a_forged_address(url: str) -> int:
    return httpx.post(
        url + "/api/v1/auth/token",
        data={"username": "nobody@clinic.example.org", "password": "not-the-password"},
        headers={"X-Forwarded-For": FORGED},
        timeout=10,
    ).status_code


def test_a_forged_x_forwarded_for_from_loopback_is_not_believed(env: dict[str, str], served: Served) -> None:
    assert wrong_password_from_a_forged_address(served.url) == 401
    served.stop()
    assert audit_addresses(env) == ["127.0.0.1"]


def test_a_named_proxy_is_believed(env: dict[str, str], tmp_path: Path) -> None:
    server = Served({**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"}, tmp_path, tmp_path / "proxy.log")
    try:
        assert wrong_password_from_a_forged_address(server.url) == 401
    finally:
        server.stop()
    assert audit_addresses(env) == [FORGED]


def test_uvicorn_trusts_no_proxy_and_writes_no_access_log_of_its_own() -> None:
    options = uvicorn_options(Settings(), "127.0.0.1", 8000)
    assert options["proxy_headers"] is False and options["forwarded_allow_ips"] == ""
    assert options["access_log"] is False and options["log_config"] is None
    named = uvicorn_options(Settings(forwarded_allow_ips="10.0.0.5, 10.0.0.6"), "0.0.0.0", 8000)
    assert named["proxy_headers"] is True and named["forwarded_allow_ips"] == "10.0.0.5, 10.0.0.6"


@pytest.fixture
def quiet_test_client() -> Iterator[None]:
    """The test's own HTTP client logs every URL it sends, numbers in the query included."""
    httpx_log = logging.getLogger("httpx")
    old = httpx_log.level
    httpx_log.setLevel(logging.WARNING)
    yield
    httpx_log.setLevel(old)


def test_serve_logs_json_lines_with_route_templates_and_no_number_or_query(
    served: Served, quiet_test_client: None
) -> None:
    sid = "CA" + "ab" * 16
    query = urlencode({"CallSid": sid, "From": STRANGER, "Digits": "6175550103"})
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/voice/identify?{query}", {})
    answer = httpx.get(
        f"{served.url}/twilio/voice/identify?{query}", headers={"X-Twilio-Signature": signature}, timeout=10
    )
    assert answer.status_code == 200
    httpx.get(f"{served.url}/api/v1/participants?search=Ana", timeout=10)
    output = served.stop()

    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "peerline.access"]
    assert [(e["method"], e["route"], e["status"]) for e in access if e["route"] != "/healthz"] == [
        ("GET", "/twilio/voice/{step}", 200),
        ("GET", "/api/v1/participants", 401),
    ]
    assert next(e for e in access if e["route"].startswith("/twilio"))["request_id"] == sid
    assert not any("uvicorn.access" in e["logger"] for e in entries)
    for line in output.splitlines():
        assert "?" not in line or "search" not in line, line
        assert "Ana" not in line
        assert not any(n[2:] in line or n[5:] in line for n in ALL_TEST_NUMBERS), line


def test_metrics_port_is_served_by_peerline_serve(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    server = Served({**env, "METRICS_PORT": str(port)}, tmp_path, tmp_path / "metrics.log")
    try:
        open_port = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        main_port = httpx.get(f"{server.url}/metrics", timeout=10)
    finally:
        server.stop()
    assert open_port.status_code == 200 and "peerline_metrics_database_up 1.0" in open_port.text
    assert main_port.status_code == 404  # no METRICS_TOKEN: nothing on the main port
