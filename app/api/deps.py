"""Who is asking: bearer token to staff user, role checks, client address, audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from app.context import Context, ContextDep
from app.db import SessionDep
from app.models import StaffUser
from app.services import audit, staff
from app.services.audit import Action
from app.services.staff import Role, TokenMaker

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Actor:
    """The signed-in staff member, with what the audit trail needs."""

    user: StaffUser
    role: Role
    client_ip: str
    ctx: Context

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def sees_full_numbers(self) -> bool:
        return self.role >= Role.staff

    def audit(self, db: Session, action: Action, target: str | None = None) -> None:
        audit.record(
            db, actor=self.email, action=action, target=target, client_ip=self.client_ip, at=self.ctx.clock()
        )


def signed_in_actor(request: Request, db: Session, ctx: Context, user_id: int, epoch: int) -> Actor | None:
    """The actor a bearer token or console session names, or None when the account is gone or
    disabled, or the credential predates a password change or "sign out everywhere".

    The API and the console both find who is asking here, so both refuse the same accounts.
    """
    user = staff.active_user(db, user_id, epoch)
    return Actor(user, Role[user.role], client_ip(request), ctx) if user is not None else None


def current_actor(
    request: Request, db: SessionDep, ctx: ContextDep, token: Annotated[str | None, Depends(oauth2)]
) -> Actor:
    unauthorised = HTTPException(
        status_code=401, detail="sign in first: no valid bearer token", headers={"WWW-Authenticate": "Bearer"}
    )
    if not token:
        raise unauthorised
    tokens: TokenMaker = request.app.state.tokens
    claims = tokens.read(token, ctx.clock())
    actor = signed_in_actor(request, db, ctx, claims.user_id, claims.epoch) if claims is not None else None
    if actor is None:
        raise unauthorised
    return actor


def require(role: Role) -> Callable[[Actor], Actor]:
    def check(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role < role:
            raise HTTPException(
                status_code=403, detail=f"this needs the {role.name} role; you are a {actor.role.name}"
            )
        return actor

    return check


NurseActor = Annotated[Actor, Depends(require(Role.nurse))]
AnyActor = NurseActor  # every role: nurse is the lowest
StaffActor = Annotated[Actor, Depends(require(Role.staff))]
AdminActor = Annotated[Actor, Depends(require(Role.admin))]
