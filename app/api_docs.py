"""The API's documentation page, `/docs`, served whole from this service: no CDN.

FastAPI's own `/docs` loads Swagger UI from a CDN, so on a ward network without the internet
the page stays blank. The `swagger-ui-bundle` package ships Swagger UI's files; they are
mounted at `/docs-static` and the page FastAPI builds (`get_swagger_ui_html`) points at them.

Swagger UI's start-up is one inline script. The page carries its own Content-Security-Policy
that allows that one script by its hash and nothing else from anywhere but this service, so
the page works whether or not the security-headers middleware gives every path a policy
(it keeps a header a response already has).

The bundled Swagger UI is 4.x, which reads OpenAPI 3.0 documents but not the 3.1 that FastAPI
writes (it refuses the whole document: "does not specify a valid version field"). The page
therefore loads `/docs/openapi-3.0.json`: the same document, with the few 3.1 spellings
FastAPI uses said the 3.0 way (see `as_openapi_30`). `/openapi.json` stays 3.1 for clients.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

STATIC = "/docs-static"
SCHEMA_30 = "/docs/openapi-3.0.json"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _policy(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    # Swagger UI sets style attributes as it renders (collapsing sections, the spinner)
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'"
    )


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` (3.1) is `X` with `nullable: true` (3.0)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or {"type": "null"} not in options:
        return schema
    rest = [o for o in options if o != {"type": "null"}]
    out = {k: v for k, v in schema.items() if k != "anyOf"}
    if len(rest) == 1 and "$ref" in rest[0]:
        # a $ref in 3.0 ignores its siblings: keep it inside allOf so `nullable` counts
        out.update(allOf=rest, nullable=True)
    elif len(rest) == 1:
        out.update(rest[0], nullable=True)
    else:
        out.update(anyOf=rest, nullable=True)
    return out


def as_openapi_30(node: Any) -> Any:
    """The document with FastAPI's 3.1 spellings written the 3.0 way, for Swagger UI 4.

    FastAPI uses three: `type: "null"` in an `anyOf` (optional values), `examples` as a list
    inside a schema, and `const`. Everything else it writes is the same in both versions.
    """
    if isinstance(node, list):
        return [as_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: as_openapi_30(value) for key, value in _nullable(node).items()}
    # OpenAPI's own `examples` (of a parameter or a body) is a map; a list is JSON Schema's
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    # a dict here is a property that happens to be called "const", not the keyword
    if "const" in out and not isinstance(out["const"], dict):
        out["enum"] = [out.pop("const")]
    return out


def install(app: FastAPI) -> None:
    """`/docs`, its assets under `/docs-static`, and the 3.0 copy of the schema it reads."""
    app.mount(STATIC, StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.get(SCHEMA_30, include_in_schema=False)
    def openapi_30() -> JSONResponse:
        document = as_openapi_30(app.openapi())
        document["openapi"] = "3.0.3"
        return JSONResponse(document)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + SCHEMA_30,
            title=f"{app.title} API",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon-32x32.png",
        )
        html = bytes(page.body).decode()
        return HTMLResponse(html, headers={"Content-Security-Policy": _policy(html)})
