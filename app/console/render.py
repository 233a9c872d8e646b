"""Turning a page's facts into HTML: templates, times in the programme's zone, redirects, error pages."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from app.console.deps import BadForm, ConsoleActor, ConsoleForbidden, NeedsSignIn, session_keys
from app.console.forms import BadField
from app.console.session import COOKIE
from app.models import Participant
from app.services import care, labels
from app.services.sessions import IDLE_TIMEOUT
from app.services.staff import Role
from ivr.quiet_hours import InvalidTimeZone, zone

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


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


def go(request: Request, who: ConsoleActor, url: str) -> Response:
    return _refreshed(request, who, RedirectResponse(url, status_code=303))


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return public_page(request, "error.html", status_code, title=title, message=message)


def note_too_long(request: Request, note: str) -> HTMLResponse | None:
    """The page that refuses a care-team note over its length, or None when it fits."""
    if len(note) <= care.NOTE_LENGTH:
        return None
    return error_page(
        request,
        422,
        "This note is too long",
        f"A note holds at most {care.NOTE_LENGTH:,} characters; this one had {len(note):,}. "
        "Go back, shorten it and try again.",
    )


def install(app: FastAPI) -> None:
    """Error pages for the console: sign-in redirects, forbidden and stale forms."""

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
        return error_page(request, 403, "Not for your role", exc.message)

    @app.exception_handler(BadField)
    async def bad_field(request: Request, exc: BadField) -> Response:
        return error_page(
            request,
            422,
            "Something typed cannot be stored",
            f"The field “{exc.field}” {exc.message}. Go back, correct it and try again.",
        )

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, exc: BadForm) -> Response:
        return error_page(
            request,
            403,
            "This form has expired",
            "For your safety the form was not accepted. Go back, reload the page and try again.",
        )
