"""The FastAPI application: `uvicorn app.main:app`, or `peerline serve`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from app.api import routes as api_routes
from app.console import routes as console_routes
from app.console.security import SecurityHeaders
from app.console.session import SessionKeys
from app.context import Context, system_clock
from app.crypto import PhoneVault
from app.db import make_engine, make_sessionmaker
from app.routes import twilio_webhooks
from app.services.errors import ServiceError
from app.services.policy import Policy
from app.services.staff import Locked, TokenMaker
from app.settings import Settings, get_settings


def error_detail(exc: ServiceError) -> object:
    """422s keep FastAPI's shape (a list naming the field), so clients parse one format."""
    if exc.status_code != 422:
        return str(exc)
    field, _, message = str(exc).partition(": ")
    return [{"loc": ["body", field], "msg": message or field, "type": "value_error"}]


def create_app(settings: Settings | None = None, **engine_kwargs: Any) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = None
        if settings.scheduler_enabled:
            from app.scheduler import start_scheduler

            scheduler = start_scheduler(app.state.sessionmaker, app.state.context)
        yield
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    app = FastAPI(
        title="Peerline",
        version="0.1.0",
        description="Reciprocal peer support by telephone: webhooks, admin API and console.",
        lifespan=lifespan,
    )
    engine = make_engine(settings.database_url, **engine_kwargs)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.context = Context(
        settings, PhoneVault.from_secret(settings.secret_key), system_clock, Policy.from_settings(settings)
    )
    app.state.tokens = TokenMaker.from_secret(settings.secret_key)
    app.include_router(twilio_webhooks.router)
    app.include_router(api_routes.router)
    app.state.session_keys = SessionKeys.from_secret(settings.secret_key)
    app.include_router(console_routes.router)
    console_routes.install(app)
    app.mount(
        "/console/static",
        StaticFiles(directory=Path(console_routes.__file__).parent / "static"),
        name="static",
    )
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Locked) else None
        return JSONResponse({"detail": error_detail(exc)}, status_code=exc.status_code, headers=headers)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        try:
            with request.app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            logging.getLogger(__name__).warning("database did not answer the readiness check")
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

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
