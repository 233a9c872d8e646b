"""Security headers on every response: no framing, no inline script, no referrer leaks.

A plain ASGI middleware: it adds headers without the cost of wrapping each request,
which the webhooks would feel.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# encoded once: a response's headers are byte pairs, lower-case names
_EVERY = [(name.lower().encode(), value.encode()) for name, value in HEADERS.items()]
_CONSOLE = [*_EVERY, (b"content-security-policy", CSP.encode()), (b"cache-control", b"no-store")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        console = str(scope.get("path", "")).startswith("/console")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # FastAPI's own /docs page loads Swagger UI with inline script: the console
                # needs no script at all, so the strict policy is the console's
                added = _CONSOLE if console else _EVERY
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in added if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
