"""Every answer carries the security headers once; the console's also its strict policy."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_console_page_has_every_security_header_and_the_strict_policy(client: TestClient) -> None:
    answer = client.get("/console/login")
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "camera=()" in answer.headers["permissions-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def test_other_answers_have_the_headers_but_not_the_consoles_policy(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in answer.headers


def test_a_header_the_app_set_itself_is_kept_and_not_repeated(client: TestClient) -> None:
    answer = client.get("/console/static/console.css")
    names = [name.lower() for name, _ in answer.headers.multi_items()]
    assert names.count("x-content-type-options") == 1
    assert names.count("x-frame-options") == 1
