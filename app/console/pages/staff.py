"""Staff accounts (admins): the list, adding an account, disabling and enabling one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.console.deps import Admin, CheckedForm, ConsoleActor, ConsoleForbidden, ConsoleId
from app.console.forms import account_error
from app.console.render import go, page
from app.db import SessionDep
from app.services import queries, staff
from app.services.audit import Action
from app.services.errors import ServiceError
from app.services.staff import Role

router = APIRouter(prefix="/console", include_in_schema=False)


def _staff_page(
    request: Request,
    who: ConsoleActor,
    db: Session,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    users = queries.all_users(db)
    who.audit(db, Action.USERS_READ, f"{len(users)} accounts")
    return page(request, who, "staff.html", status_code, users=users, errors=errors, values=values)


@router.get("/staff")
def staff_page(request: Request, who: Admin, db: SessionDep) -> Response:
    return _staff_page(request, who, db, values={}, errors={})


@router.post("/staff")
def create_staff(request: Request, who: Admin, form: CheckedForm, db: SessionDep) -> Response:
    try:
        user = staff.create_user(
            db,
            email=form.get("email", ""),
            password=form.get("password", ""),
            role=form.get("role", ""),
            now=who.ctx.clock(),
        )
    except ServiceError as exc:
        db.rollback()
        values = {"email": form.get("email", ""), "role": form.get("role", "")}
        return _staff_page(request, who, db, values=values, errors=account_error(exc), status_code=400)
    who.audit(db, Action.USER_CREATE, f"staff_user:{user.id}")
    return go(request, who, "/console/staff")


@router.post("/staff/{user_id}")
def edit_staff(
    request: Request, who: Admin, form: CheckedForm, db: SessionDep, user_id: ConsoleId
) -> Response:
    user = staff.get_user(db, user_id)
    # stricter than the service's rule (no demoting or disabling oneself): no self-edit here at all
    if user.id == who.user.id:
        raise ConsoleForbidden("You cannot change or disable your own account here.")
    now = who.ctx.clock()
    if form.get("action") == "sign_out":
        # a lost laptop or a leaving employee: every session and token of the account ends now
        staff.end_all_sessions(db, user, now=now)
        who.audit(db, Action.USER_SIGN_OUT, f"staff_user:{user.id}")
        return go(request, who, "/console/staff")
    # the form sends a switch (disable/enable) or else a role; anything else changes nothing
    disabled = {"disable": True, "enable": False}.get(form.get("action", ""))
    role = form.get("role") if disabled is None and form.get("role") in Role.__members__ else None
    staff.update_user(db, user, by=who.user, role=role, disabled=disabled, now=now)
    who.audit(db, Action.USER_UPDATE, f"staff_user:{user.id}")
    return go(request, who, "/console/staff")
