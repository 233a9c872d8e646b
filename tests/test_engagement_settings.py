"""PROGRAMME_TIMEZONE and ENGAGED_WHEN: read from the environment, checked, named when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import settings as settings_module
from app.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings_module, "DEV_SECRETS_FILE", tmp_path / "secrets.json")
    for name in ("PROGRAMME_TIMEZONE", "CONSOLE_TIMEZONE", "ENGAGED_WHEN", "ENVIRONMENT", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_programme_zone_is_the_consoles_until_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().programme_timezone == "UTC"
    monkeypatch.setenv("CONSOLE_TIMEZONE", "America/Chicago")
    assert load_settings().programme_timezone == "America/Chicago"
    monkeypatch.setenv("PROGRAMME_TIMEZONE", "America/New_York")
    settings = load_settings()
    assert (settings.programme_timezone, settings.console_timezone) == ("America/New_York", "America/Chicago")


def test_engaged_when_is_accepted_unless_set_to_contact(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().engaged_when == "accepted"
    monkeypatch.setenv("ENGAGED_WHEN", "contact")
    assert load_settings().engaged_when == "contact"


@pytest.mark.parametrize(("name", "value"), [("PROGRAMME_TIMEZONE", "Mars/Base"), ("ENGAGED_WHEN", "talked")])
def test_a_malformed_value_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith(f"{name}:")
    assert "\n" not in str(error.value)
