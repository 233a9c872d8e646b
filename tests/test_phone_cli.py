"""`peerline phone` refused by the service says what to change, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from tests.conftest import ANA, AUTH_TOKEN, PROGRAMME_NUMBER, SECRET, ServerThread

runner = CliRunner()


@pytest.mark.parametrize(
    ("public_url", "token"),
    [("http://localhost:8000", AUTH_TOKEN), ("https://peerline.example.org", "another-folders-token-0123")],
)
def test_a_call_signed_for_another_address_or_token_is_told_how_to_match_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app: FastAPI, public_url: str, token: str
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "PUBLIC_BASE_URL": public_url,  # the server checks https://peerline.example.org
        "TWILIO_AUTH_TOKEN": token,
        "TWILIO_PHONE_NUMBER": PROGRAMME_NUMBER,
        "SECRET_KEY": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    server = ServerThread(app)
    try:
        result = runner.invoke(cli, ["phone", "--from", ANA, "--url", server.url], input="h\n")
    finally:
        server.stop()
        settings_module.get_settings.cache_clear()
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: the service refused the call's signature (403)")
    assert f"signs for {public_url}" in line and "run.sh prints it" in line
    assert "Traceback" not in result.output
