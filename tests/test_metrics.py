"""GET /metrics: Prometheus text behind METRICS_TOKEN (or open on METRICS_PORT), with closed
vocabularies as labels: after a whole call it shows the call's outcome and the webhooks'
latency buckets, and no number or name anywhere."""

from __future__ import annotations

import re
import socket
import time
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import metrics
from app.metrics import AppMetrics, DatabaseCollector, serve_port, timed_twilio
from app.settings import Settings
from app.simulator.telephone import Scripted, Telephone
from tests.conftest import ALL_TEST_NUMBERS, ANA, STRANGER, Programme

TOKEN = "metrics-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = ("Ana", "Bea")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": TOKEN})


@pytest.fixture(autouse=True)
def _fresh_figures(app: FastAPI) -> None:
    # a scrape reuses the database's figures for 10 s; these tests scrape before and after
    app.state.metrics.database.cache_seconds = 0


def scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels...}`, whatever the order of its labels."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, number = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if found == labels:
            return float(number)
    return None


def assert_nothing_personal(text: str) -> None:
    for number in ALL_TEST_NUMBERS:
        assert number[2:] not in text and number[5:] not in text, number
    for name in NAMES:
        assert not re.search(rf"\b{name}\b", text), name


def test_a_whole_call_shows_its_outcome_and_latency_buckets_and_no_number_or_name(
    client: TestClient, phone: Telephone, ana_and_bea: tuple[int, int, int]
) -> None:
    before = scrape(client)
    voice_ok_before = (
        value(before, "peerline_webhook_requests_total", step="/twilio/voice", outcome="ok") or 0
    )

    phone.call(ANA, Scripted(talk_seconds=300), Scripted(["1"]))
    text = scrape(client)

    assert value(text, "peerline_calls", kind="peer", outcome="contact") == 1
    assert value(text, "peerline_contacts", kind="peer") == 1
    assert value(text, "peerline_pairs_active") == 1
    assert value(text, "peerline_metrics_database_up") == 1
    assert (
        value(text, "peerline_webhook_requests_total", step="/twilio/voice", outcome="ok")
        == voice_ok_before + 1
    )
    # the step Twilio was sent to, by name: a closed set, never the raw path
    assert value(text, "peerline_webhook_requests_total", step="/twilio/voice/whisper", outcome="ok")
    buckets = [
        line
        for line in text.splitlines()
        if line.startswith("peerline_webhook_duration_seconds_bucket") and 'step="/twilio/voice"' in line
    ]
    assert any('le="0.25"' in line for line in buckets) and any('le="+Inf"' in line for line in buckets)
    assert value(text, "peerline_db_pool_size", pool="phone_line") is not None
    assert_nothing_personal(text)


def test_a_caller_who_keys_a_number_leaves_no_number_in_the_metrics(
    client: TestClient, phone: Telephone, ana_and_bea: tuple[int, int, int]
) -> None:
    phone.call(STRANGER, Scripted(["6175550101#"], talk_seconds=90), Scripted(["1"]))
    phone.call(STRANGER, Scripted(["6175550188#"] * 3))
    # a step nobody wrote, with a number in the path (the test client's own log shows it,
    # so not one of the numbers the suite watches the logs for): counted under the template
    phone.post("/twilio/voice/6175550160", {"CallSid": "CA" + "1" * 32, "From": STRANGER})
    text = scrape(client)
    assert value(text, "peerline_webhook_requests_total", step="/twilio/voice/{step}", outcome="ok")
    assert "6175550160" not in text
    assert_nothing_personal(text)


def test_metrics_need_the_bearer_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    )
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200 and "peerline_" in response.text


def test_without_a_token_the_main_port_serves_no_metrics(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"metrics_token": None}))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers=AUTH).status_code == 404
    app.state.engine.dispose()


def test_metrics_port_serves_them_open(app: FastAPI) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    stop = serve_port(app.state.metrics, "127.0.0.1", port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        stop()
    assert response.status_code == 200
    assert "peerline_metrics_database_up 1.0" in response.text


def test_signature_failures_sign_in_failures_and_lockouts_are_counted(
    client: TestClient, staff: object, programme: Programme
) -> None:
    before = scrape(client)
    client.post("/twilio/voice", data={"CallSid": "CA" + "2" * 32, "From": ANA})
    for _ in range(11):
        client.post("/api/v1/auth/token", data={"username": "nurse@clinic.example.org", "password": "wrong"})
    text = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return (value(text, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert delta("peerline_signature_failures_total") == 1
    assert delta("peerline_webhook_requests_total", step="/twilio/voice", outcome="rejected") == 1
    assert delta("peerline_sign_in_failures_total", reason="bad_credentials", channel="api") == 10
    assert delta("peerline_sign_in_failures_total", reason="locked", channel="api") == 1
    assert_nothing_personal(text)


def test_an_apology_is_counted_with_its_reason_and_marks_the_webhook() -> None:
    from app.logs import begin_request, end_request

    before = metrics.APOLOGIES.labels(reason="error")._value.get()
    token = begin_request()
    try:
        metrics.apology_served("error")
        metrics.request_finished("/twilio/voice", "POST", 200, 0.01, webhook_step="/twilio/voice")
    finally:
        end_request(token)
    assert metrics.APOLOGIES.labels(reason="error")._value.get() == before + 1
    apologies = metrics.WEBHOOK_REQUESTS.labels(step="/twilio/voice", outcome="apology")._value.get()
    assert apologies >= 1


def test_sweeps_and_twilio_requests_are_timed() -> None:
    report = SimpleNamespace(
        scheduled=2, flagged=0, placed=2, deferred=0, cancelled=0, failed=1, unknown=1, rate_limited=0
    )
    placed = metrics.REMINDERS.labels(result="placed")._value.get()
    metrics.sweep_finished(report, 0.42)
    assert metrics.REMINDERS.labels(result="placed")._value.get() == placed + 2
    assert metrics.SWEEP_SECONDS._value.get() == pytest.approx(0.42)
    assert time.time() - metrics.SWEEP_LAST._value.get() < 5

    class RateLimited:
        pass

    @timed_twilio("calls.create")
    def place() -> RateLimited:
        return RateLimited()

    errors = metrics.TWILIO_ERRORS.labels(operation="calls.create", outcome="rate_limited")._value.get()
    place()
    assert (
        metrics.TWILIO_ERRORS.labels(operation="calls.create", outcome="rate_limited")._value.get()
        == errors + 1
    )


def test_a_database_that_does_not_answer_makes_the_scrape_say_so_quickly(settings: Settings) -> None:
    collector = DatabaseCollector(settings.database_url, timeout=0.2, cache_seconds=0)
    collector._read = lambda: time.sleep(2)  # type: ignore[assignment,method-assign,return-value]
    started = time.monotonic()
    families = {family.name: family for family in collector.collect()}
    assert time.monotonic() - started < 1
    assert families["peerline_metrics_database_up"].samples[0].value == 0
    assert "peerline_calls" not in families
    collector.close()


def test_app_metrics_render_is_prometheus_text(settings: Settings) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    app_metrics = AppMetrics(settings.database_url, {})
    try:
        names = {family.name for family in text_string_to_metric_families(app_metrics.render().decode())}
    finally:
        app_metrics.close()
    assert {"peerline_calls", "peerline_webhook_requests", "peerline_apologies_served"} <= names
