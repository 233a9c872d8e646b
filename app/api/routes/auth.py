"""Sign-in: the OAuth2 password form to a short-lived bearer token; changing one's password;
signing out everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm

from app.api import schemas
from app.api.deps import AnyActor, client_ip
from app.api.errors import field_error
from app.context import ContextDep
from app.db import SessionDep
from app.services import auth, staff
from app.services.audit import Action
from app.services.auth import BadCredentials, Locked
from app.services.staff import TOKEN_LIFETIME, TokenMaker

router = APIRouter(tags=["auth"])


def _refusal(exc: BadCredentials | Locked) -> HTTPException:
    headers = (
        {"Retry-After": str(exc.retry_after)} if isinstance(exc, Locked) else {"WWW-Authenticate": "Bearer"}
    )
    return HTTPException(status_code=exc.status_code, detail=str(exc), headers=headers)


def _token(request: Request, signed_in: auth.SignedIn, ctx: ContextDep) -> schemas.TokenOut:
    tokens: TokenMaker = request.app.state.tokens
    return schemas.TokenOut(
        access_token=tokens.issue(signed_in, ctx.clock()), expires_in=int(TOKEN_LIFETIME.total_seconds())
    )


@router.post("/auth/token", response_model=schemas.TokenOut)
def sign_in(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], ctx: ContextDep
) -> schemas.TokenOut:
    """OAuth2 password form (`username` is the email) to a short-lived bearer token.

    Ten wrong passwords for one account within 15 minutes lock it for 15 minutes (429 with
    Retry-After), fifty from one address lock that address; every attempt is audited.
    """
    if any(ord(c) < 32 for c in form.username):
        raise field_error("body", "username", "must not contain control characters")
    # No request session here: the sign-in runs its own short transactions, so that the
    # password is checked with no transaction open (see app/services/auth.py).
    try:
        signed_in = auth.sign_in(
            request.app.state.sessionmaker,
            email=form.username,
            password=form.password,
            client_ip=client_ip(request),
            now=ctx.clock(),
            channel="api",
        )
    except (BadCredentials, Locked) as exc:
        raise _refusal(exc) from None
    return _token(request, signed_in, ctx)


@router.post("/auth/password", response_model=schemas.TokenOut)
def change_password(
    request: Request, body: schemas.PasswordChange, actor: AnyActor, db: SessionDep, ctx: ContextDep
) -> schemas.TokenOut:
    """Change your own password. Every token and console session of your account ends,
    this token included; the answer is a new token. A wrong current password counts towards
    the lockout like any wrong password."""
    email = actor.email
    # the request's transaction ends here (it only read who is asking): the password check runs
    # its own short transactions and must not wait for this one's lock on SQLite
    db.commit()
    try:
        signed_in = auth.change_password(
            request.app.state.sessionmaker,
            email=email,
            current_password=body.current_password,
            new_password=body.new_password,
            client_ip=actor.client_ip,
            now=ctx.clock(),
            channel="api",
        )
    except BadCredentials:
        raise field_error("body", "current_password", "this is not your current password") from None
    except Locked as exc:
        raise _refusal(exc) from None
    return _token(request, signed_in, ctx)


@router.post("/auth/sign-out-everywhere", status_code=204)
def sign_out_everywhere(actor: AnyActor, db: SessionDep) -> None:
    """End every token and console session of your own account, this token included."""
    staff.end_all_sessions(db, actor.user, now=actor.ctx.clock())
    actor.audit(db, Action.SIGN_OUT_EVERYWHERE, f"staff_user:{actor.user.id}")
