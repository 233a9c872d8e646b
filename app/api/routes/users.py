"""Staff accounts, for admins."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import convert, schemas
from app.api.deps import AdminActor
from app.api.pagination import page_out
from app.api.params import Paging, PathId
from app.db import SessionDep
from app.services import queries, staff
from app.services.audit import Action

router = APIRouter(tags=["users"])


@router.get("/users", response_model=schemas.PageOut[schemas.UserOut])
def list_users(actor: AdminActor, db: SessionDep, page: Paging) -> schemas.PageOut[schemas.UserOut]:
    found = queries.users(db, after=page.after(), limit=page.limit)
    actor.audit(db, Action.USERS_READ, f"{len(found)} users")
    return page_out(found, [convert.user(u) for u in found])


@router.post("/users", status_code=201, response_model=schemas.UserOut)
def create_user(body: schemas.UserIn, actor: AdminActor, db: SessionDep) -> schemas.UserOut:
    user = staff.create_user(
        db, email=body.email, password=body.password, role=body.role, now=actor.ctx.clock()
    )
    actor.audit(db, Action.USER_CREATE, f"staff_user:{user.id}")
    return convert.user(user)


@router.patch("/users/{user_id}", response_model=schemas.UserOut)
def edit_user(user_id: PathId, body: schemas.UserPatch, actor: AdminActor, db: SessionDep) -> schemas.UserOut:
    user = staff.update_user(
        db,
        staff.get_user(db, user_id),
        by=actor.user,
        role=body.role,
        disabled=body.disabled,
        now=actor.ctx.clock(),
    )
    actor.audit(db, Action.USER_UPDATE, f"staff_user:{user.id}")
    return convert.user(user)


@router.post("/users/{user_id}/sign-out-everywhere", status_code=204)
def sign_out_user(user_id: PathId, actor: AdminActor, db: SessionDep) -> None:
    """End every bearer token and console session of this account at once (a lost laptop, a
    leaving employee). The account itself stays as it is: disable it to keep it out."""
    user = staff.get_user(db, user_id)
    staff.end_all_sessions(db, user, now=actor.ctx.clock())
    actor.audit(db, Action.USER_SIGN_OUT, f"staff_user:{user.id}")
