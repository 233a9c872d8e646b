"""Turning a page's facts into HTML: templates, times in the programme's zone, redirects, error pages."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.console.deps import BadForm, ConsoleActor, ConsoleForbidden, NeedsSignIn, console_actor, session_keys
from app.console.forms import BadField
from app.console.session import COOKIE
from app.models import Participant
from app.services import care, labels
from app.services.errors import Conflict, Invalid, NotFound, ServiceError
from app.services.sessions import IDLE_TIMEOUT
from app.services.staff import Role
from ivr.quiet_hours import InvalidTimeZone, zone

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC = Path(__file__).parent / "static"


@pass_context
def _local(context: Any, moment: datetime | None) -> datetime | None:
    """A stored UTC time in the zone the programme works in (PROGRAMME_TIMEZONE; the older
    CONSOLE_TIMEZONE is read as its alias by the settings)."""
    if moment is None:
        return None
    settings = context["request"].app.state.context.settings
    return moment.astimezone(zone(settings.programme_timezone))


@pass_context
def _their_time(context: Any, moment: datetime | None, person: Participant | None) -> str:
    """The participant's own clock beside a call time ("8:12 Bea's time"), only when it differs
    from the programme's: a nurse calling back needs to know it is 8 in the morning there."""
    if moment is None or person is None:
        return ""
    ours = _local(context, moment)
    try:
        theirs = moment.astimezone(zone(person.timezone))
    except InvalidTimeZone:
        return ""
    if ours is None or ours.utcoffset() == theirs.utcoffset():
        return ""
    day = "" if theirs.date() == ours.date() else theirs.strftime("%a ")
    return f"{day}{theirs.strftime('%-H:%M')} {person.name}’s time"


TEMPLATES.env.filters["local"] = _local
TEMPLATES.env.filters["their_time"] = _their_time
TEMPLATES.env.filters["label"] = labels.call_label
TEMPLATES.env.filters["duration"] = labels.duration


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(IDLE_TIMEOUT.total_seconds()),
        path="/console",
        httponly=True,
        secure=request.app.state.context.settings.public_base_url.startswith("https://"),
        samesite="lax",
    )


def _refreshed(request: Request, who: ConsoleActor, response: Response) -> Response:
    # the session slides: each page seen restarts the idle clock
    token, _ = session_keys(request).issue(who.session.user_id, who.ctx.clock(), who.session.sid)
    set_session_cookie(request, response, token)
    return response


def page(
    request: Request, who: ConsoleActor, template: str, status_code: int = 200, **context: Any
) -> Response:
    """A page for the signed-in staff member. Rendered here, inside the handler, so every
    lazy load a template makes happens before the session dependency commits and closes."""
    response = TEMPLATES.TemplateResponse(
        request, template, {"who": who, "Role": Role, "csrf": who.csrf, **context}, status_code=status_code
    )
    return _refreshed(request, who, response)


def public_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page for someone not signed in (the sign-in form, error pages)."""
    return TEMPLATES.TemplateResponse(request, template, {"who": None, **context}, status_code=status_code)


def signed_in(request: Request) -> ConsoleActor | None:
    """Who is signed in, for an error page raised outside a page's own code: its menu then
    stays, so a nurse who followed a stale link is one click from where they were going.

    Opens a session of its own: call it only where the request's session has been closed
    (exception handlers); a page that has `who` passes it to error_page instead, because on
    SQLite a second transaction would wait for the page's own write lock. Any failure (the
    database being what went wrong, say) is a page without the menu, never a second error.
    """
    try:
        with request.app.state.sessionmaker() as db:
            who = console_actor(request, db, request.app.state.context)
            # the template reads the role and email only; load them before the session closes
            _ = (who.email, who.role)
            return who
    except Exception:
        return None


def go(request: Request, who: ConsoleActor, url: str) -> Response:
    return _refreshed(request, who, RedirectResponse(url, status_code=303))


def error_page(
    request: Request, status_code: int, title: str, message: str, who: ConsoleActor | None = None
) -> HTMLResponse:
    """A page that says what went wrong; with `who`, it keeps the signed-in menu."""
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"who": who, "Role": Role, "csrf": who.csrf if who else "", "title": title, "message": message},
        status_code=status_code,
    )


async def _error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    # the look-up reads the database: off the event loop, as every other database call
    who = await run_in_threadpool(signed_in, request)
    return error_page(request, status_code, title, message, who)


def _console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


# what a person reads for an HTTP error on a console page, by status
_HTTP_PAGES = {
    404: (
        "Page not found",
        "There is no page at this address. The menu above leads to every part of the console.",
    ),
    405: ("Page not found", "This address takes a form, not a visit. Use the menu above to go on."),
    422: (
        "This address is not right",
        "Part of this address cannot be read. Go back and follow the link again.",
    ),
}


def note_too_long(request: Request, note: str, who: ConsoleActor | None = None) -> HTMLResponse | None:
    """The page that refuses a care-team note over its length, or None when it fits."""
    if len(note) <= care.NOTE_LENGTH:
        return None
    return error_page(
        request,
        422,
        "This note is too long",
        f"A note holds at most {care.NOTE_LENGTH:,} characters; this one had {len(note):,}. "
        "Go back, shorten it and try again.",
        who,
    )


def favicon() -> Response:
    """/favicon.ico: the console's small SVG, so browsers asking at the site root get an icon, not a 404."""
    return Response(
        (STATIC / "favicon.svg").read_bytes(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def install(app: FastAPI) -> None:
    """Error pages for the console (sign-in redirects, forbidden, stale forms, unknown pages,
    refused values, failures), each keeping the menu for whoever is signed in; and the favicon."""

    app.add_api_route("/favicon.ico", favicon, methods=["GET", "HEAD"], include_in_schema=False)

    @app.exception_handler(NeedsSignIn)
    async def needs_sign_in(request: Request, exc: NeedsSignIn) -> Response:
        target = "/console/login"
        if exc.next_path not in ("/console/", "/console/login"):
            target += "?next=" + quote(exc.next_path)
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @app.exception_handler(ConsoleForbidden)
    async def forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        return await _error_page(request, 403, "Not for your role", exc.message)

    @app.exception_handler(BadField)
    async def bad_field(request: Request, exc: BadField) -> Response:
        return await _error_page(
            request,
            422,
            "Something typed cannot be stored",
            f"The field “{exc.field}” {exc.message}. Go back, correct it and try again.",
        )

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, exc: BadForm) -> Response:
        return await _error_page(
            request,
            403,
            "This form has expired",
            "For your safety the form was not accepted. Go back, reload the page and try again.",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # the API and the webhooks keep FastAPI's JSON answer; console pages get a page
        if not _console(request) or exc.status_code not in _HTTP_PAGES:
            return await http_exception_handler(request, exc)
        title, message = _HTTP_PAGES[exc.status_code]
        return await _error_page(request, exc.status_code, title, message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not _console(request):
            return await request_validation_exception_handler(request, exc)
        title, message = _HTTP_PAGES[422]
        return await _error_page(request, 422, title, message)

    async def service_error(request: Request, exc: Exception) -> Response:
        """A service's refusal on a console page (a pair that is gone, say) as a page; elsewhere
        the API's JSON, as app.main answers every other ServiceError."""
        if not isinstance(exc, ServiceError):  # registered for its subclasses only
            raise exc
        if not _console(request):
            # whatever app.main answers for every other ServiceError: one shape for the API
            general = request.app.exception_handlers.get(ServiceError)
            if general is None:
                return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)
            answer: Response = await general(request, exc)
            return answer
        titles = {404: "Not found", 409: "This cannot be done now", 422: "This cannot be stored"}
        message = str(exc)
        return await _error_page(
            request,
            exc.status_code,
            titles.get(exc.status_code, "This cannot be done"),
            message[:1].upper() + message[1:] + ".",
        )

    # registered for the subclasses: app.main's handler for ServiceError itself comes later
    # and would replace one for the base class; the most specific class wins the look-up
    for kind in (NotFound, Conflict, Invalid):
        app.add_exception_handler(kind, service_error)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> Response:
        # Starlette logs the exception after this answer; the person gets words and the menu
        if not _console(request):
            return PlainTextResponse("Internal Server Error", status_code=500)
        return await _error_page(
            request,
            500,
            "Something went wrong",
            "The console could not show this page, and nothing was changed. Try again in a "
            "moment; if it happens again, tell IT what you were doing.",
        )
