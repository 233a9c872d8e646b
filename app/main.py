"""The FastAPI application: `uvicorn app.main:app`, or `peerline serve`."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import api_docs
from app import console as console_routes
from app.api import routes as api_routes
from app.bodylimit import BodyLimit
from app.console.security import SecurityHeaders
from app.console.session import SessionKeys
from app.context import Context, system_clock
from app.crypto import PhoneVault
from app.db import PHONE_LINE, make_engine, make_sessionmaker
from app.deadline import DeadlineRunner
from app.logs import access as log_access
from app.logs import begin_request, end_request
from app.metrics import AppMetrics, request_finished, webhook_step
from app.services.errors import ServiceError
from app.services.policy import Policy
from app.services.staff import Locked, TokenMaker
from app.settings import Settings, get_settings
from app.twilio import fallback as twilio_fallback
from app.twilio import fast
from app.twilio import outreach as twilio_outreach
from app.twilio import webhooks as twilio_webhooks
from app.twilio.fallback import apology_twiml
from ivr.vocab import StepName


def error_detail(exc: ServiceError) -> object:
    """422s keep FastAPI's shape (a list naming the field), so clients parse one format."""
    if exc.status_code != 422:
        return str(exc)
    field, _, message = str(exc).partition(": ")
    return [{"loc": ["body", field], "msg": message or field, "type": "value_error"}]


READY_SECONDS = 0.5
METRICS_SECONDS = 5.0


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/api/v1/participants/{participant_id}`).

    A route inside an included router knows only its own part of the template; the part
    before it is the routers' literal prefix, found as the path before the longest tail the
    route's pattern matches. No route (a 404): `unmatched`; a mounted app: its mount point.
    Never a raw value from the path.
    """
    route = scope.get("route")
    path = str(scope.get("path", ""))
    pattern = getattr(route, "path_regex", None)
    template = getattr(route, "path_format", None)
    if pattern is None or not isinstance(template, str):
        mount = str(scope.get("root_path") or "")
        return f"{mount}/{{path}}" if mount else "unmatched"
    at = 0
    while at >= 0:
        if pattern.match(path[at:]):  # not match(path, at): its `^` holds only at 0
            return path[:at] + template
        at = path.find("/", at + 1)
    return template


class Observe:
    """Every request: a request id for its log lines, one access-log line, its metrics.

    Plain ASGI (no per-request wrapping cost the webhooks would feel). The route is read
    after the app has routed the request, so what is logged and counted is the route's
    template (`/api/v1/participants/{participant_id}`), never the raw path or its query.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.steps = {str(step) for step in StepName}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = begin_request()
        started = time.monotonic()
        status = 500  # what the client gets if the app fails before it answers

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            seconds = time.monotonic() - started
            route = route_template(scope)
            twilio = str(scope.get("path", "")).startswith("/twilio")
            step = webhook_step(route, scope.get("path_params") or {}, self.steps) if twilio else None
            request_finished(route, scope["method"], status, seconds, webhook_step=step)
            log_access(scope["method"], route, status, seconds)
            end_request(token)


def database_ready(engine: Engine) -> str | None:
    """None when the database can be read and written now; otherwise what is wrong.

    Nothing is written: the probe takes the locks a call's write needs and rolls back.
    """
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '500ms'"))
                if conn.execute(text("SHOW transaction_read_only")).scalar() == "on":
                    return "the database is read-only"
                conn.execute(text("LOCK TABLE call IN ROW EXCLUSIVE MODE"))
            else:
                # the engine's BEGIN IMMEDIATE already holds SQLite's writer lock; setting
                # the header's user_version to itself writes a page, so a read-only file fails
                conn.execute(text("SELECT 1 FROM call LIMIT 1"))
                version = conn.execute(text("PRAGMA user_version")).scalar()
                conn.execute(text(f"PRAGMA user_version = {int(version or 0)}"))
            conn.rollback()
    except Exception as exc:
        return f"{type(exc).__name__}: database cannot be read or written"
    return None


_frozen = False


def _freeze_start_up() -> None:
    """What exists once the first app has started (modules, routes, compiled statements)
    lives as long as the process: the collector's full passes need not walk it again.
    Unfrozen, each full pass over it paused the event loop for up to a tenth of a second
    under load. Garbage is collected first, so none of it is kept for good; once per
    process (the tests start many apps)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, **engine_kwargs: Any) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = None
        if settings.scheduler_enabled:
            from app.scheduler import start_scheduler

            scheduler = start_scheduler(app.state.sessionmaker, app.state.context)
        _freeze_start_up()
        yield
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        app.state.deadline.shutdown()
        app.state.probe.shutdown(wait=False, cancel_futures=True)
        app.state.metrics.close()
        # the pools' idle connections end with the app, not when the process does: several
        # apps in one process (tests, a restart inside a worker) must not pile them up
        app.state.phone_engine.dispose()
        app.state.engine.dispose()

    app = FastAPI(
        title="Peerline",
        version="0.1.0",
        description="Reciprocal peer support by telephone: webhooks, admin API and console.",
        lifespan=lifespan,
        # served by app/api_docs.py from the bundled Swagger UI: FastAPI's pages load a CDN
        docs_url=None,
        redoc_url=None,
        # Peerline's figures are its own Prometheus metrics and its logs, which never hold a
        # number. FastAPI's OpenTelemetry bridge would export exception messages and paths
        # wherever a process-wide provider points (and asks after one on every request).
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    sync = settings.sqlite_synchronous
    engine = make_engine(settings.database_url, synchronous=sync, **engine_kwargs)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    # the phone line has its own engine, pool and threads: nothing else can make it wait
    phone_engine = make_engine(settings.database_url, PHONE_LINE, synchronous=sync, **engine_kwargs)
    app.state.phone_engine = phone_engine
    app.state.phone_sessionmaker = make_sessionmaker(phone_engine)
    app.state.deadline = DeadlineRunner.for_engine(
        phone_engine, settings.database_url, synchronous=sync, **engine_kwargs
    )
    if app.state.deadline.mode == "batch":
        app.state.deadline.read_ahead = fast.READ_AHEAD
    app.state.probe = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
    app.state.ready_probe = None
    app.state.context = Context(
        settings,
        PhoneVault.from_secret(settings.secret_key, settings.secret_key_previous),
        system_clock,
        Policy.from_settings(settings),
    )
    pools = {"general": engine, "phone_line": phone_engine}
    if app.state.deadline.batch_engine is not None:
        pools["phone_line_batches"] = app.state.deadline.batch_engine
    app.state.metrics = AppMetrics(settings.database_url, pools)
    app.state.tokens = TokenMaker.from_secret(settings.secret_key)
    twilio_webhooks.install(app)
    app.include_router(twilio_fallback.router)
    app.include_router(twilio_outreach.router)
    app.include_router(api_routes.router)
    app.state.session_keys = SessionKeys.from_secret(settings.secret_key)
    app.include_router(console_routes.router)
    console_routes.install(app)
    app.mount(
        "/console/static",
        StaticFiles(directory=Path(console_routes.__file__).parent / "static"),
        name="static",
    )
    api_docs.install(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, twiml_apology=lambda: apology_twiml(settings.support_phone_number))
    # outermost: it sees every answer, the body limit's refusals included
    app.add_middleware(Observe)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Locked) else None
        return JSONResponse({"detail": error_detail(exc)}, status_code=exc.status_code, headers=headers)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        # async and database-free: answers even when every worker thread is stuck
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        probe: asyncio.Future[str | None] | None = state.ready_probe
        if probe is None or probe.done():
            # one probe at a time: checks arriving while the database hangs wait on the same
            # probe instead of piling stuck threads up behind it
            loop = asyncio.get_running_loop()
            probe = state.ready_probe = loop.run_in_executor(state.probe, database_ready, state.phone_engine)
        try:
            problem = await asyncio.wait_for(asyncio.shield(probe), READY_SECONDS)
        except TimeoutError:
            problem = "the database did not answer in time"
        if problem:
            logging.getLogger(__name__).warning("not ready: %s", problem)
            return JSONResponse({"status": "database unavailable", "detail": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text. Only with METRICS_TOKEN, as a bearer token; METRICS_PORT serves
        the same figures on a port of its own (see `peerline serve`)."""
        token = settings.metrics_token
        if token is None:
            raise HTTPException(status_code=404, detail="Not Found")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return JSONResponse(
                {"detail": "a bearer token (METRICS_TOKEN) is needed"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        loop = asyncio.get_running_loop()
        try:
            body = await asyncio.wait_for(
                loop.run_in_executor(request.app.state.metrics.executor, request.app.state.metrics.render),
                METRICS_SECONDS,
            )
        except TimeoutError:
            return JSONResponse({"detail": "metrics took too long"}, status_code=503)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` builds the app on first use, after settings are checked
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
