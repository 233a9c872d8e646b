"""Logging for `peerline serve`: JSON lines in production, text in development.

What a log line may carry is decided here, once:

- every request gets a request id; on the phone line it becomes the call's CallSid (the
  parent call's for the partner's leg) as soon as the signed form is read, so one call's
  webhooks, and whatever they log on the phone line's threads, share one id. The SID,
  never the number;
- the access log is written by the service itself (uvicorn's is turned off): method, the
  route's template and the status. Never the raw path or the query string: webhooks accept
  GET, so `?From=%2B1617...` would be logged, and `?search=` carries names;
- a redaction filter on every handler masks anything shaped like a phone number, in the
  message, its arguments, extra fields and tracebacks: the last line of defence, not the
  first (code logs field names and ids, not values).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

ACCESS_LOGGER = "peerline.access"

# ------------------------------------------------------------------ the request being served


@dataclass
class RequestState:
    """Shared by the middleware, the Twilio form dependency and the phone line's thread.

    The object is mutable on purpose: a copied context (the phone line's worker thread)
    holds the same object, so what a worker marks (an apology) the middleware sees.
    The id is drawn when a line first asks for it: most requests log nothing but the
    access line, and a webhook's id is its call's SID anyway.
    """

    given_id: str | None = None
    call_sid: str | None = None
    apology: str | None = None

    @property
    def request_id(self) -> str:
        if self.given_id is None:
            self.given_id = new_request_id()
        return self.given_id

    @request_id.setter
    def request_id(self, value: str) -> None:
        self.given_id = value


_request: ContextVar[RequestState | None] = ContextVar("peerline_request", default=None)

_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")


def new_request_id() -> str:
    return secrets.token_hex(8)


RequestToken = Token["RequestState | None"]


def begin_request() -> RequestToken:
    """A fresh request id for what runs in this context from now on; end_request undoes it."""
    return _request.set(RequestState())


def end_request(token: RequestToken) -> None:
    _request.reset(token)


def current_request() -> RequestState | None:
    return _request.get()


def bind_call(call_sid: str | None, parent_call_sid: str | None = None) -> None:
    """From here on this request's id is the call's SID (the parent's, for a partner's leg).

    Only something shaped like a Twilio SID is taken: the value is about to be written
    into every log line of the request.
    """
    state = _request.get()
    if state is None:
        return
    for sid in (parent_call_sid, call_sid):
        if sid and _SID.fullmatch(sid):
            state.request_id = state.call_sid = sid
            return


# ------------------------------------------------------------------ redaction

# A run of at least seven digits, optionally led by + (or its URL form %2B) and broken by
# the separators people type between digit groups. Not next to a letter or a digit, so
# Twilio's SIDs (two letters then hex) and words stay whole; a date (2026-11-17) and a
# dotted IPv4 address are not numbers either.
PHONE_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?<!\d\.)"
    r"(?!\d{4}-\d\d-\d\d(?!\d))(?!\d{1,3}(?:\.\d{1,3}){3}(?!\d))"
    r"(?:\+|%2[Bb])?(?:\d(?:[ ().\-/]|%20|%28|%29){0,3}){6,}\d"
    r"(?![A-Za-z0-9])"
)
MASK = "[number removed]"


def redact(text: str) -> str:
    return PHONE_SHAPED.sub(MASK, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class RedactNumbers(logging.Filter):
    """Masks phone-number-shaped text in a record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, never drop the record
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD:
                setattr(record, key, _redact_value(value))
        return True


class RequestId(logging.Filter):
    """Stamps each record with the request it belongs to ('-' outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = _request.get()
        record.request_id = state.request_id if state is not None else "-"
        return True


# ------------------------------------------------------------------ formats


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, logger, request id, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return super().format(record)


def make_handler(*, json_lines: bool, stream: IO[str] | None = None) -> logging.Handler:
    """A handler with the request id and the redaction filter: how every handler is made."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(RequestId())
    handler.addFilter(RedactNumbers())
    return handler


_QUIET = {
    "httpx": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,
    "apscheduler": logging.WARNING,
}


def configure(*, json_lines: bool, level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Route every logger (uvicorn's too) to one handler on the root logger.

    Handlers someone else put on the root (a test's collector) are left alone, but every
    handler this module installs replaces the previous one it installed.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_peerline", False)]:
        root.removeHandler(old)
    handler = make_handler(json_lines=json_lines, stream=stream)
    handler._peerline = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    # uvicorn's own loggers propagate to the root; its access log is replaced by ours
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    return handler


def access(method: str, route: str, status: int, seconds: float) -> None:
    """One line per request: never the raw path, never the query string."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "%s %s %d in %.1f ms",
        method,
        route,
        status,
        seconds * 1000,
        extra={"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 1)},
    )
