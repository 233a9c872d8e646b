"""A missing or malformed setting stops start-up with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import settings as settings_module
from app.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings_module, "DEV_SECRETS_FILE", tmp_path / "secrets.json")
    for name in (
        "SECRET_KEY",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_PHONE_NUMBER",
        "TWILIO_ACCOUNT_SID",
        "PUBLIC_BASE_URL",
        "ENVIRONMENT",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_BASE_URL", "peerline.example.org"),
        ("TWILIO_PHONE_NUMBER", "call me"),
        ("DEFAULT_REGION", "USA"),
        ("MIN_CONTACT_SECONDS", "a minute"),
        ("DATABASE_URL", "mysql://x"),
        ("ENVIRONMENT", "staging"),
    ],
)
def test_a_malformed_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith(name + ":")
    assert "\n" not in str(error.value)


def test_production_refuses_to_start_without_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "x" * 32)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", "+18005550100")
    with pytest.raises(ConfigError, match=r"^SECRET_KEY"):
        load_settings()


def test_development_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    first = load_settings()
    second = load_settings()
    assert first.secret_key and first.secret_key == second.secret_key
    assert first.twilio_auth_token == second.twilio_auth_token
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0


def test_a_plain_postgres_url_uses_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    assert load_settings().database_url == "postgresql+psycopg://postgres@127.0.0.1/test"


PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "s" * 48,
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "TWILIO_PHONE_NUMBER": "+18005550100",
    "PUBLIC_BASE_URL": "https://peerline.example.org",
}


def test_production_starts_with_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    assert load_settings().environment == "production"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_ACCOUNT_SID", None),
        ("TWILIO_ACCOUNT_SID", "AC" + "0" * 32),
        ("TWILIO_ACCOUNT_SID", "ACnot-a-sid"),
        ("TWILIO_AUTH_TOKEN", None),
        ("TWILIO_PHONE_NUMBER", None),
        ("PUBLIC_BASE_URL", "http://peerline.example.org"),
        ("PUBLIC_BASE_URL", "https://localhost:8000"),
        ("PUBLIC_BASE_URL", "https://127.0.0.1"),
    ],
    ids=lambda v: str(v),
)
def test_production_refuses_what_would_only_fail_on_a_live_call(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str | None
) -> None:
    for key, setting in PRODUCTION.items():
        monkeypatch.setenv(key, setting)
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith(name + ":")
    assert "\n" not in str(error.value)
