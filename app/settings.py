"""Configuration from environment variables (and a `.env` file).

Development generates its secrets once into a local file so a new user can run the
service with no set-up; production refuses to start without real ones.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr.phone import InvalidPhoneNumber, normalise
from ivr.quiet_hours import InvalidQuietHours, InvalidTimeZone, QuietHours, zone

log = logging.getLogger(__name__)

DEV_SECRETS_FILE = Path(os.environ.get("PEERLINE_DEV_SECRETS", ".peerline-secrets.json"))


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./peerline.db"
    public_base_url: str = "http://localhost:8000"
    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = ""
    twilio_phone_number: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    secret_key: str = ""
    scheduler_enabled: bool = True
    reminder_sweep_minutes: int = Field(default=5, ge=1)
    default_region: str = "US"
    support_phone_number: str | None = None
    min_contact_seconds: int = Field(default=60, ge=0)
    contact_period_days: int = Field(default=7, ge=1)
    reminder_hours: str = "10:00-19:00"
    console_timezone: str = "UTC"
    log_level: str = "INFO"

    @field_validator("public_base_url", "twilio_api_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("reminder_hours")
    @classmethod
    def _window(cls, value: str) -> str:
        try:
            return str(QuietHours.parse(value))
        except InvalidQuietHours as exc:
            raise ValueError(str(exc).replace("quiet hours", "reminder hours")) from exc

    @field_validator("console_timezone")
    @classmethod
    def _console_zone(cls, value: str) -> str:
        try:
            zone(value)
        except InvalidTimeZone as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if len(value) != 2 or not value.isalpha():
            raise ValueError("must be a two-letter region code such as US")
        return value.upper()

    @field_validator("twilio_phone_number", "support_phone_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return normalise(value, "US")
        except InvalidPhoneNumber as exc:
            raise ValueError(f"must be a phone number in E.164 form ({exc})") from exc

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        # plain postgres URLs mean psycopg 3, the driver we ship
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        if not value.startswith(("sqlite", "postgresql+")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @property
    def programme_number(self) -> str:
        # development without a number still needs a valid caller ID for the simulator
        return self.twilio_phone_number or "+18005550100"


def _dev_secrets() -> dict[str, str]:
    try:
        data: dict[str, str] = json.loads(DEV_SECRETS_FILE.read_text())
        if data.get("secret_key") and data.get("twilio_auth_token"):
            return data
    except (OSError, ValueError):
        pass
    data = {"secret_key": secrets.token_urlsafe(48), "twilio_auth_token": secrets.token_hex(16)}
    DEV_SECRETS_FILE.write_text(json.dumps(data))
    DEV_SECRETS_FILE.chmod(0o600)
    log.warning(
        "development secrets generated in %s; set SECRET_KEY and TWILIO_AUTH_TOKEN in production",
        DEV_SECRETS_FILE,
    )
    return data


def load_settings() -> Settings:
    """Read and check the settings, or raise ConfigError with one readable line."""
    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise ConfigError(f"{name}: {err['msg']}") from None
    if settings.environment == "production":
        missing = [
            name
            for name, value in (
                ("SECRET_KEY", settings.secret_key),
                ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                ("TWILIO_PHONE_NUMBER", settings.twilio_phone_number),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"{missing[0]}: required when ENVIRONMENT=production")
        if len(settings.secret_key) < 32:
            raise ConfigError("SECRET_KEY: must be at least 32 characters")
    elif not settings.secret_key or not settings.twilio_auth_token:
        dev = _dev_secrets()
        settings.secret_key = settings.secret_key or dev["secret_key"]
        settings.twilio_auth_token = settings.twilio_auth_token or dev["twilio_auth_token"]
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
