"""The API docs page (/docs) works with no internet: every file it needs comes from this service."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api_docs import as_openapi_30
from app.db import make_engine
from app.main import create_app
from app.models import Base
from app.settings import Settings
from tests.conftest import SECRET, ServerThread

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
LINKS = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.fixture
def docs_app(tmp_path: Path) -> Iterator[FastAPI]:
    url = f"sqlite:///{tmp_path}/docs.db"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(Settings(database_url=url, secret_key=SECRET, scheduler_enabled=False))
    yield app
    app.state.engine.dispose()


@pytest.fixture
def http(docs_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(docs_app) as client:
        yield client


def test_the_docs_page_names_no_host_but_this_one_and_its_files_load(http: TestClient) -> None:
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", page.text), "the page names an outside host"

    links = LINKS.findall(page.text)
    assert {"/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css"} <= set(links)
    for link in links:
        asset = http.get(link)
        assert asset.status_code == 200, link
        assert asset.content, link
    schema_url = re.search(r"url: '([^']+)'", page.text)
    assert schema_url is not None and http.get(schema_url.group(1)).status_code == 200


def test_the_docs_page_allows_its_own_script_and_nothing_from_elsewhere(http: TestClient) -> None:
    policy = http.get("/docs").headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy
    assert "http" not in policy and "*" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy


def test_redoc_which_only_a_cdn_serves_is_gone(http: TestClient) -> None:
    assert http.get("/redoc").status_code == 404


def test_clients_still_get_openapi_31_and_the_page_the_same_document_said_in_30(http: TestClient) -> None:
    original = http.get("/openapi.json").json()
    for_the_page = http.get("/docs/openapi-3.0.json").json()
    assert original["openapi"].startswith("3.1")
    assert for_the_page["openapi"] == "3.0.3"
    assert for_the_page["paths"].keys() == original["paths"].keys()
    assert for_the_page["components"]["schemas"].keys() == original["components"]["schemas"].keys()
    text = str(for_the_page)
    assert "'null'" not in text and "'const'" not in text


def test_31_spellings_are_written_the_30_way() -> None:
    schema: dict[str, Any] = {
        "properties": {
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Note"},
            "pair": {"anyOf": [{"$ref": "#/components/schemas/PairOut"}, {"type": "null"}]},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "kind": {"const": "peer", "type": "string"},
            "hour": {"type": "integer", "examples": [7]},
            "const": {"type": "string"},
        }
    }
    props = as_openapi_30(schema)["properties"]
    assert props["note"] == {"type": "string", "title": "Note", "nullable": True}
    assert props["pair"] == {"allOf": [{"$ref": "#/components/schemas/PairOut"}], "nullable": True}
    assert props["either"] == {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}
    assert props["kind"] == {"enum": ["peer"], "type": "string"}
    assert props["hour"] == {"type": "integer", "example": 7}
    assert props["const"] == {"type": "string"}  # a property that happens to be called const


# ---------------------------------------------------------------- in a real browser, offline


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")
def test_swagger_ui_renders_the_operations_in_a_browser_cut_off_from_the_internet(docs_app: FastAPI) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    server = ServerThread(docs_app)
    outside: list[str] = []
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
            )
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_default_timeout(10000)

            def offline(route: Any) -> None:
                if not route.request.url.startswith(server.url):
                    outside.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            context.route("**/*", offline)
            tab = context.new_page()
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.goto(f"{server.url}/docs")

            tab.locator(".opblock-summary-path", has_text="/api/v1/participants").first.wait_for()
            assert tab.locator(".opblock").count() > 20
            assert tab.get_by_text("Unable to render this definition").count() == 0
            SHOTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(SHOTS / "api-docs.png"))
            # an operation opens, with its parameters read from the 3.0 document
            tab.locator(".opblock-summary-path", has_text="/api/v1/calls").first.click()
            tab.get_by_text("pair_id", exact=True).first.wait_for()
            tab.screenshot(path=str(SHOTS / "api-docs-operation.png"))
            browser.close()
    finally:
        server.stop()
    assert outside == []
    assert problems == [], problems
