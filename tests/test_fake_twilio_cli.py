"""`peerline fake-twilio` finds the service like `peerline phone` does, or says why in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from app import settings as settings_module
from app.cli import cli
from app.models import Call
from app.simulator.fake_twilio import FakeTwilio, PlacedCall
from tests.conftest import ANA, AUTH_TOKEN, PROGRAMME_NUMBER, PUBLIC_BASE_URL, SECRET, Programme, ServerThread

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(public_base_url: str) -> dict[str, str]:
    return {
        "PUBLIC_BASE_URL": public_base_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": PROGRAMME_NUMBER,
        "SECRET_KEY": SECRET,
    }


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """Settings from the environment, as the command reads them; read afresh for each test."""
    monkeypatch.chdir(tmp_path)

    def set_public_url(public_base_url: str) -> None:
        for name, value in _env(public_base_url).items():
            monkeypatch.setenv(name, value)
        settings_module.get_settings.cache_clear()

    yield set_public_url
    settings_module.get_settings.cache_clear()


def reminder_to_ana() -> PlacedCall:
    """What the reminder sweep asks Twilio for: URLs on the public base URL, as the service writes them."""
    return PlacedCall(
        sid="CA" + "f" * 32,
        to=ANA,
        from_=PROGRAMME_NUMBER,
        url=f"{PUBLIC_BASE_URL}/twilio/voice/reminder",
        status_callback=f"{PUBLIC_BASE_URL}/twilio/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        machine_detection="DetectMessageEnd",
        account_sid="AC" + "0" * 32,
    )


def run_fake(monkeypatch: pytest.MonkeyPatch, args: list[str], keys: str = "") -> Result:
    """Run `peerline fake-twilio ARGS` in-process; instead of serving, it is asked for one reminder call."""

    def serve_one_call(asgi: FastAPI, **_options: Any) -> None:
        fake: FakeTwilio = asgi.state.fake
        assert fake.on_call is not None
        fake.on_call(reminder_to_ana())

    monkeypatch.setattr(uvicorn, "run", serve_one_call)
    return runner.invoke(cli, ["fake-twilio", *args], input=keys)


def test_the_call_goes_to_the_service_at_url_signed_for_the_public_url(
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[[str], None],
    app: FastAPI,
    programme: Programme,
    ana_and_bea: tuple[int, int, int],
) -> None:
    configure(PUBLIC_BASE_URL)  # a public URL this machine cannot reach: only --url can find the service
    server = ServerThread(app)
    try:
        # Ana answers (Enter), hears the reminder, then hangs up
        result = run_fake(monkeypatch, ["--url", server.url], keys="\nh\n")
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert f"ring through the service at {server.url}" in result.output
    assert "Hello, Ana" in result.output and "have not talked in a while" in result.output
    assert "The reminder call has ended." in result.output
    (call,) = programme.rows(Call)
    assert call.kind == "reminder" and call.initiator_id == ana_and_bea[0]


@pytest.mark.parametrize("how", ["--url", "PUBLIC_BASE_URL"])
def test_an_unreachable_service_is_one_readable_line(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[[str], None], how: str
) -> None:
    nowhere = f"http://127.0.0.1:{_closed_port()}"
    if how == "--url":
        configure(PUBLIC_BASE_URL)
        result = run_fake(monkeypatch, ["--url", nowhere])
    else:  # no --url: the service the settings name, as for `peerline phone`
        configure(nowhere)
        result = run_fake(monkeypatch, [])
    assert result.exit_code == 0  # the fake itself keeps serving
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: could not reach the service at {nowhere} (")
    assert "Traceback" not in result.output


def test_a_url_without_a_scheme_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[[str], None]
) -> None:
    configure(PUBLIC_BASE_URL)
    result = run_fake(monkeypatch, ["--url", "localhost:8000"])
    assert result.exit_code == 2
    assert "--url 'localhost:8000' must start with http:// or https://" in result.stderr
    assert "Traceback" not in result.output


def test_the_running_fake_stays_up_and_prints_no_traceback(tmp_path: Path) -> None:
    """The real command, in its own process: the ring happens on the fake's thread."""
    port, nowhere = _closed_port(), f"http://127.0.0.1:{_closed_port()}"
    env = {
        **os.environ,
        **_env(PUBLIC_BASE_URL),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        fake = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "fake-twilio", "--port", str(port), "--url", nowhere],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            api = f"http://127.0.0.1:{port}/2010-04-01/Accounts/AC{'0' * 32}/Calls.json"
            call = reminder_to_ana()
            form = {"To": call.to, "From": call.from_, "Url": call.url, "StatusCallback": PUBLIC_BASE_URL}
            placed = None
            deadline = time.monotonic() + 20
            while placed is None and time.monotonic() < deadline:
                try:
                    placed = httpx.post(api, data=form, auth=("AC" + "0" * 32, AUTH_TOKEN))
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert placed is not None and placed.status_code == 201
            while "could not reach" not in err.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            # the fake still answers after the failed call
            assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        finally:
            fake.terminate()
            fake.wait(timeout=10)
    errors = [line for line in err.read_text().splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: could not reach the service at {nowhere} (")
    assert "Traceback" not in out.read_text() + err.read_text()
    assert "Peerline is calling" in out.read_text()


def test_a_port_in_use_is_one_line_before_anything_is_announced(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[[str], None]
) -> None:
    configure(PUBLIC_BASE_URL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_fake(monkeypatch, ["--port", str(port)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: port {port} is in use (a fake Twilio already running there?); --port P picks another"
    )
    assert "listening" not in result.stdout and "Traceback" not in result.output
