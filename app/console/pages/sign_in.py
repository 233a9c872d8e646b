"""Signing in and out of the console."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from app.api.deps import client_ip
from app.console.deps import CheckedForm, Nurse, session_keys
from app.console.forms import posted_form, safe_next
from app.console.render import error_page, public_page, set_session_cookie
from app.console.session import COOKIE, LOGIN_COOKIE
from app.context import ContextDep
from app.db import SessionDep
from app.services import auth, sessions
from app.services.audit import Action
from app.services.auth import BadCredentials, Locked

router = APIRouter(prefix="/console", include_in_schema=False)
PostedForm = Annotated[dict[str, str], Depends(posted_form)]


def _login_page(
    request: Request,
    nonce: str,
    next_path: str,
    errors: dict[str, str],
    status_code: int = 200,
    email: str = "",
) -> Response:
    # the form's CSRF token is bound to a nonce cookie: there is no session yet to bind it to
    csrf = session_keys(request).csrf_token("login:" + nonce)
    return public_page(
        request, "login.html", status_code, csrf=csrf, next=next_path, errors=errors, email=email
    )


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(18)
    response = _login_page(request, nonce, safe_next(next), {})
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=1800, path="/console", httponly=True, samesite="strict")
    return response


@router.post("/login")
def login(request: Request, form: PostedForm, db: SessionDep, ctx: ContextDep) -> Response:
    # the request's session is not touched before the password is checked: the sign-in runs
    # its own short transactions, with none open while it hashes (app/services/auth.py)
    email = form.get("email", "").strip().lower()[:254]
    password = form.get("password", "")
    next_path = safe_next(form.get("next", ""))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not session_keys(request).csrf_ok("login:" + nonce, form.get("csrf_token", "")):
        return error_page(request, 403, "This form has expired", "Reload the sign-in page and try again.")
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your email address."
    elif any(ord(c) < 32 for c in email):
        errors["email"] = "An email address has no control characters."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _login_page(request, nonce, next_path, errors, 400, email)
    now = ctx.clock()
    try:
        # the failure and its audit are committed by the sign-in itself, before it raises
        signed_in = auth.sign_in(
            request.app.state.sessionmaker,
            email=email,
            password=password,
            client_ip=client_ip(request),
            now=now,
            channel="console",
        )
    except (BadCredentials, Locked) as exc:
        message = (
            "The email or password is not right."
            if isinstance(exc, BadCredentials)
            else str(exc).capitalize() + "."
        )
        return _login_page(request, nonce, next_path, {"password": message}, exc.status_code, email)
    sid = sessions.start(db, user_id=signed_in.id, epoch=signed_in.session_epoch, now=now)
    token, _ = session_keys(request).issue(signed_in.id, now, sid)
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(who: Nurse, form: CheckedForm, db: SessionDep) -> Response:
    """Signing out ends the session on the server: a copy of the cookie reads nothing afterwards."""
    sessions.end(who.record, now=who.ctx.clock())
    who.audit(db, Action.SIGN_OUT, "console")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
