"""Structured logs: JSON lines, a request id that is the call's SID on every webhook of a call,
an access log of method, route template and status only, and a redaction filter behind it all.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from app import logs
from app.simulator.telephone import Scripted, Telephone, new_sid
from tests.conftest import (
    ALL_TEST_NUMBERS,
    ANA,
    AUTH_TOKEN,
    BEA,
    PUBLIC_BASE_URL,
    STRANGER,
    Programme,
    Staff,
)

Pairing = tuple[int, int, int]


class Records(logging.Handler):
    """The records as the code made them, before any formatting or redaction."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def access(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == logs.ACCESS_LOGGER]


@pytest.fixture
def captured() -> Iterator[tuple[Records, io.StringIO]]:
    """A raw record collector (with the request id stamped) and the production JSON handler."""
    root = logging.getLogger()
    raw = Records()
    raw.addFilter(logs.RequestId())
    stream = io.StringIO()
    json_handler = logs.make_handler(json_lines=True, stream=stream)
    # the raw collector first: it must see the records before the redaction filter rewrites them
    root.addHandler(raw)
    root.addHandler(json_handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    yield raw, stream
    root.removeHandler(json_handler)
    root.removeHandler(raw)
    root.setLevel(old_level)


@pytest.fixture
def quiet_test_client() -> Iterator[None]:
    """The test's own HTTP client logs every URL it sends; these tests send numbers in URLs on
    purpose, and the suite fails on any number in any log."""
    httpx_log = logging.getLogger("httpx")
    old = httpx_log.level
    httpx_log.setLevel(logging.WARNING)
    yield
    httpx_log.setLevel(old)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def signed_get(client: TestClient, path: str, params: dict[str, str]) -> int:
    """A GET webhook as Twilio sends one when a number is set to GET: signed over the URL."""
    query = urlencode(params)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_BASE_URL}{path}?{query}", {})
    return client.get(f"{path}?{query}", headers={"X-Twilio-Signature": signature}).status_code


def test_the_access_log_has_method_route_template_and_status_never_the_query(
    client: TestClient,
    ana_and_bea: Pairing,
    staff: Staff,
    captured: tuple[Records, io.StringIO],
    quiet_test_client: None,
) -> None:
    raw, stream = captured
    sid = new_sid()
    params = {"CallSid": sid, "From": STRANGER, "To": "+18005550100", "Digits": "6175550103"}
    assert signed_get(client, "/twilio/voice/identify", params) == 200
    assert signed_get(client, "/twilio/voice", {"CallSid": sid, "From": ANA}) == 200
    assert client.get("/api/v1/participants?search=Ana", headers=staff["staff"]).status_code == 200
    client.get("/console/participants?q=Bea", follow_redirects=False)
    client.get("/api/v1/participants/6175550101")  # a number where an id belongs

    access = raw.access()
    assert [(r.method, r.route, r.status) for r in access] == [  # type: ignore[attr-defined]
        ("GET", "/twilio/voice/{step}", 200),
        ("GET", "/twilio/voice", 200),
        ("GET", "/api/v1/participants", 200),
        ("GET", "/console/participants", 303),
        ("GET", "/api/v1/participants/{participant_id}", 401),
    ]
    for record in access:
        message = record.getMessage()
        assert "?" not in message and "search" not in message and "Ana" not in message
        assert not any(n[2:] in message or n[5:] in message for n in ALL_TEST_NUMBERS), message
    # the webhooks' lines carry the call's SID as their request id, and nothing of the form
    assert [r.request_id for r in access[:2]] == [sid, sid]  # type: ignore[attr-defined]

    for entry in json_lines(stream):
        text = json.dumps(entry)
        assert "Ana" not in text and "Bea" not in text
        assert not any(n[2:] in text for n in ALL_TEST_NUMBERS), text
    access_json = [e for e in json_lines(stream) if e["logger"] == logs.ACCESS_LOGGER]
    assert access_json[0]["route"] == "/twilio/voice/{step}" and access_json[0]["request_id"] == sid
    assert set(access_json[0]) >= {"time", "level", "message", "method", "route", "status", "duration_ms"}


def test_every_webhook_of_a_whole_call_logs_under_the_calls_sid(
    phone: Telephone, ana_and_bea: Pairing, captured: tuple[Records, io.StringIO]
) -> None:
    raw, stream = captured
    record = phone.call(ANA, Scripted(["1"], talk_seconds=120, ends="star"), Scripted(["1"]))

    webhooks = [r for r in raw.access() if r.route.startswith("/twilio")]  # type: ignore[attr-defined]
    assert len(webhooks) >= 8
    # each leg's requests are logged under that leg's CallSid (the partner's leg is a call of
    # its own, placed through the REST API); a request that names no call gets an id of its own
    legs = {record.sid, record.partner_sid}
    ids = {r.request_id for r in webhooks}  # type: ignore[attr-defined]
    assert record.sid in ids and record.partner_sid in ids
    assert all(i in legs or not i.startswith("CA") for i in ids)
    logged = {e["request_id"] for e in json_lines(stream) if str(e.get("route", "")).startswith("/twilio")}
    assert logged == ids


def test_a_failing_webhook_logs_its_traceback_under_the_sid_with_numbers_masked(
    phone: Telephone,
    ana_and_bea: Pairing,
    captured: tuple[Records, io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw, stream = captured
    from app.twilio import webhooks

    def broken(*args: object, **kwargs: object) -> None:
        # not one of the numbers the suite watches for: this one is meant to reach the filter
        raise RuntimeError("could not look up +1 617 555 0161")

    monkeypatch.setattr(webhooks.calls, "caller_facts", broken)
    monkeypatch.setattr(webhooks.fast, "known_caller", broken)  # the known caller's fast path
    record = phone.call(ANA, Scripted())

    failures = [r for r in raw.records if r.exc_info and r.name.startswith("app.")]
    assert failures, "the failure was not logged"
    # logged on the phone line's own thread, still under the call's SID
    assert {r.request_id for r in failures} == {record.sid}  # type: ignore[attr-defined]
    errors = [e for e in json_lines(stream) if "exception" in e]
    assert errors and all(e["request_id"] == record.sid for e in errors)
    assert all("0161" not in json.dumps(e) and logs.MASK in str(e["exception"]) for e in errors)


def test_whole_call_scenarios_at_debug_log_no_number_anywhere(
    phone: Telephone,
    programme: Programme,
    ana_and_bea: Pairing,
    captured: tuple[Records, io.StringIO],
) -> None:
    raw, stream = captured
    phone.call(ANA, Scripted(["1"], talk_seconds=200, ends="star", message_seconds=30), Scripted(["1"]))
    phone.call(BEA, Scripted(), Scripted(answers=False))
    phone.call("anonymous", Scripted(["6175550101#"], talk_seconds=90), Scripted(["1"]))
    phone.call(STRANGER, Scripted(["6175550188#", "6175550177#", "12#"]))
    phone.call(STRANGER, Scripted(["6175550102#"]), Scripted(["2"]))

    assert len(raw.records) > 50
    for record in raw.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert not any(n[2:] in text.replace("-", "") for n in ALL_TEST_NUMBERS), text
    output = stream.getvalue()
    assert not any(n[2:] in output or n[5:] in output for n in ALL_TEST_NUMBERS)
    assert "Ana" not in output and "Bea" not in output


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("From=%2B16175550199&Digits=6175550103", "From=[number removed]&Digits=[number removed]"),
        ("dialled (617) 555-0101", "dialled ([number removed]"),
        ("+1 617 555 0101 and 617.555.0101", "[number removed] and [number removed]"),
        ("keyed 555-0101#", "keyed [number removed]#"),
        ("CA0123456789abcdef0123456789abcdef", "CA0123456789abcdef0123456789abcdef"),
        ("at 2026-11-17 20:00:00+00:00", "at 2026-11-17 20:00:00+00:00"),
        ("peer 192.168.100.200 call 42 took 2.21 s", "peer 192.168.100.200 call 42 took 2.21 s"),
    ],
)
def test_the_redaction_filter_masks_what_is_shaped_like_a_number(text: str, masked: str) -> None:
    assert logs.redact(text) == masked


def test_the_filter_masks_arguments_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("peerline.test.redaction")
    handler = logs.make_handler(json_lines=True, stream=stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("bad number 6175550162")
        except ValueError:
            logger.exception(
                "caller %s keyed %s", "+16175550163", "6175550164#", extra={"field": "6175550165"}
            )
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (entry,) = json_lines(stream)
    assert all(n not in json.dumps(entry) for n in ("0162", "0163", "0164", "0165"))
    assert entry["field"] == logs.MASK and "Traceback" in str(entry["exception"])


def test_text_format_for_development(app: FastAPI) -> None:
    stream = io.StringIO()
    handler = logs.make_handler(json_lines=False, stream=stream)
    logger = logging.getLogger("peerline.test.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("hello %s", "world")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    line = stream.getvalue().strip()
    assert line.endswith("WARNING peerline.test.text [-] hello world")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_slow_requests_access_line_keeps_its_status_and_duration(json_lines: bool) -> None:
    # a status and a four-digit duration side by side were once shaped like a number
    stream = io.StringIO()
    handler = logs.make_handler(json_lines=json_lines, stream=stream)
    logger = logging.getLogger(logs.ACCESS_LOGGER)
    logger.addHandler(handler)
    was = logger.level
    logger.setLevel(logging.INFO)
    try:
        logs.access("POST", "/twilio/voice", 503, 1.2345678)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(was)
    text = stream.getvalue()
    assert logs.MASK not in text
    assert "503" in text and "1234.6" in text
