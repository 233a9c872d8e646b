"""Your own account (every role): change your password, sign out everywhere."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.console.deps import CheckedForm, ConsoleActor, Nurse, session_keys
from app.console.render import page, set_session_cookie
from app.console.session import COOKIE
from app.db import SessionDep
from app.services import auth, outreach, sessions, staff
from app.services.audit import Action
from app.services.auth import BadCredentials, Locked
from app.services.errors import Invalid
from app.services.passwords import password_problem

router = APIRouter(prefix="/console", include_in_schema=False)


def _account_page(
    request: Request, who: ConsoleActor, errors: dict[str, str], status_code: int = 200, changed: bool = False
) -> Response:
    mine = outreach.me(who.user, who.ctx.vault)
    return page(request, who, "account.html", status_code, errors=errors, changed=changed, me=mine)


@router.post("/account/phone")
def set_phone(request: Request, who: Nurse, form: CheckedForm, db: SessionDep) -> Response:
    """Your own phone for care-team calls: kept encrypted, shown only by its last two digits."""
    try:
        outreach.set_phone(
            who.user, who.ctx.vault, form.get("phone", ""), region=who.ctx.settings.default_region
        )
    except Invalid as exc:
        return _account_page(
            request, who, {"phone": str(exc).removeprefix("phone: ").capitalize() + "."}, 400
        )
    who.audit(db, Action.ME_PHONE, f"staff_user:{who.user.id}")
    return RedirectResponse("/console/account#phone", status_code=303)


@router.post("/account/digest")
def set_digest(request: Request, who: Nurse, form: CheckedForm, db: SessionDep) -> Response:
    hour = form.get("hour", "")
    outreach.set_digest_hour(who.user, int(hour) if hour.isdigit() and int(hour) < 24 else None)
    who.audit(db, Action.ME_DIGEST, f"staff_user:{who.user.id}")
    return RedirectResponse("/console/account#digest", status_code=303)


@router.get("/account")
def account_page(request: Request, who: Nurse, changed: int = 0) -> Response:
    return _account_page(request, who, {}, changed=bool(changed))


@router.post("/account/password")
def change_password(request: Request, who: Nurse, form: CheckedForm, db: SessionDep) -> Response:
    """A new password ends every session and token of the account, this browser's included;
    this browser then gets a fresh session, so whoever changed it stays signed in."""
    current, new, again = (
        form.get(k, "") for k in ("current_password", "new_password", "new_password_again")
    )
    errors: dict[str, str] = {}
    problem = password_problem(new, email=who.email)
    if not current:
        errors["current_password"] = "Enter your current password."
    if problem:
        errors["new_password"] = problem[0].upper() + problem[1:] + "."
    elif new != again:
        errors["new_password_again"] = "The two new passwords are not the same."
    if errors:
        return _account_page(request, who, errors, 400)
    now = who.ctx.clock()
    # this request's transaction only read who is asking: it ends here, so the password check's
    # own short transactions never wait for its lock (on SQLite, the one writer lock)
    db.commit()
    try:
        signed_in = auth.change_password(
            request.app.state.sessionmaker,
            email=who.email,
            current_password=current,
            new_password=new,
            client_ip=who.client_ip,
            now=now,
            channel="console",
        )
    except BadCredentials:
        return _account_page(request, who, {"current_password": "This is not your current password."}, 400)
    except Locked as exc:
        return _account_page(request, who, {"current_password": str(exc).capitalize() + "."}, 429)
    sid = sessions.start(db, user_id=signed_in.id, epoch=signed_in.session_epoch, now=now)
    token, _ = session_keys(request).issue(signed_in.id, now, sid)
    response = RedirectResponse("/console/account?changed=1", status_code=303)
    set_session_cookie(request, response, token)
    return response


@router.post("/account/sign-out-everywhere")
def sign_out_everywhere(who: Nurse, form: CheckedForm, db: SessionDep) -> Response:
    """Every session and token of this account ends, on every computer, this one included."""
    staff.end_all_sessions(db, who.user, now=who.ctx.clock())
    who.audit(db, Action.SIGN_OUT_EVERYWHERE, f"staff_user:{who.user.id}")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
