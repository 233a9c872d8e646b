"""Configuration from environment variables (and a `.env` file).

Development generates its secrets once into a local file so a new user can run the
service with no set-up; production refuses to start without real ones.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr.phone import InvalidPhoneNumber, normalise
from ivr.quiet_hours import InvalidQuietHours, InvalidTimeZone, QuietHours, zone

log = logging.getLogger(__name__)

DEV_SECRETS_FILE = Path(os.environ.get("PEERLINE_DEV_SECRETS", ".peerline-secrets.json"))


PLACEHOLDER_ACCOUNT_SID = "AC" + "0" * 32
# development without a Twilio account: every REST request goes to the built-in fake here
# (`peerline fake-twilio`, or the one `peerline phone` and `peerline reminders run` serve),
# never to the real API with placeholder credentials
DEV_FAKE_TWILIO_URL = "http://127.0.0.1:8099"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./peerline.db"
    # SQLite durability: normal (WAL, no fsync at commit) or full (fsync at every commit)
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    public_base_url: str = "http://localhost:8000"
    twilio_account_sid: str = PLACEHOLDER_ACCOUNT_SID
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
    # a staffed line `0` puts a caller through to after stepping out of a call, and when it
    # is staffed (daily, HH:MM-HH:MM in PROGRAMME_TIMEZONE; unset: whenever the line is set)
    care_team_line: str | None = None
    care_team_hours: str | None = None
    # json: one object a line (production's default); text: for a person at a terminal
    log_format: Literal["auto", "json", "text"] = "auto"
    # GET /metrics: a bearer token for it on the main port, and/or a separate open port
    metrics_token: str | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # proxies whose X-Forwarded-For/-Proto `peerline serve` believes; none unless named
    forwarded_allow_ips: str | None = None
    # a second key the service also reads numbers with while `peerline keys rotate` runs
    secret_key_previous: str | None = None
    # the database holds the synthetic demo programme (scripts/run.sh sets it): the console
    # says so on every page, so nobody takes it for real participants
    demo_data: bool = False
    # staff digests: where mail goes out (smtp://[user:password@]host[:port], smtps:// for TLS)
    # and whom it is from; no SMTP_URL, no digests
    smtp_url: str | None = None
    digest_from: str = "peerline@localhost"

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @field_validator("metrics_token", "forwarded_allow_ips", "secret_key_previous", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # The programme's own zone (IANA): engagement cohorts (`?cohort=YYYY-MM`) are months of
    # pairing in it. Unset, it is CONSOLE_TIMEZONE, so one zone serves until they differ.
    programme_timezone: str = Field(default="", validate_default=True)
    # Who counts as ever engaged: in at least one accepted call (the partner pressed 1), or
    # in at least one contact (talk time >= MIN_CONTACT_SECONDS).
    engaged_when: Literal["accepted", "contact"] = "accepted"
    # What restarts a pair's quiet clock: a contact (this service's rule), or any call one
    # partner attempted to the other (`attempt`: the trials' rule, for trial fidelity).
    reminder_trigger: Literal["contact", "attempt"] = "contact"

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

    @field_validator("care_team_hours")
    @classmethod
    def _care_team_hours(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return str(QuietHours.parse(value))
        except InvalidQuietHours as exc:
            raise ValueError(str(exc).replace("quiet hours", "care-team hours")) from exc

    @field_validator("console_timezone")
    @classmethod
    def _console_zone(cls, value: str) -> str:
        try:
            zone(value)
        except InvalidTimeZone as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("programme_timezone")
    @classmethod
    def _programme_zone(cls, value: str, info: ValidationInfo) -> str:
        # fields are validated in order, so CONSOLE_TIMEZONE (already checked) is known here
        value = value or str(info.data.get("console_timezone") or "UTC")
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

    @field_validator("twilio_phone_number", "support_phone_number", "care_team_line")
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
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.environment == "production"
        return self.log_format == "json"

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


ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


def _check_production_twilio(settings: Settings) -> None:
    """Refuse what would fail only later, on a live call or a reminder (Twilio error 20003)."""
    sid = settings.twilio_account_sid
    if not ACCOUNT_SID.fullmatch(sid) or sid == PLACEHOLDER_ACCOUNT_SID:
        raise ConfigError(
            "TWILIO_ACCOUNT_SID: required when ENVIRONMENT=production (AC followed by 32 hex digits, "
            "from the Twilio console)"
        )
    url = urlsplit(settings.public_base_url)
    if url.scheme != "https":
        raise ConfigError("PUBLIC_BASE_URL: must be https:// when ENVIRONMENT=production")
    host = (url.hostname or "").lower()
    if host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127."):
        raise ConfigError("PUBLIC_BASE_URL: must be the public address Twilio reaches, not this machine")


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
        if settings.secret_key_previous is not None and len(settings.secret_key_previous) < 32:
            raise ConfigError("SECRET_KEY_PREVIOUS: must be at least 32 characters")
        _check_production_twilio(settings)
        return settings
    if (
        settings.twilio_account_sid == PLACEHOLDER_ACCOUNT_SID
        and "twilio_api_url" not in settings.model_fields_set
    ):
        settings.twilio_api_url = DEV_FAKE_TWILIO_URL
    if not settings.secret_key or not settings.twilio_auth_token:
        dev = _dev_secrets()
        settings.secret_key = settings.secret_key or dev["secret_key"]
        settings.twilio_auth_token = settings.twilio_auth_token or dev["twilio_auth_token"]
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
