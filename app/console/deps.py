"""Who is asking, and whether they may: the signed-in staff member, role checks, checked forms.

The console's exceptions live here too; render.install() turns them into pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from app.api.deps import Actor, signed_in_actor
from app.api.pagination import MAX_ID
from app.console.forms import posted_form
from app.console.session import COOKIE, ConsoleSession, SessionKeys
from app.context import ContextDep
from app.db import SessionDep
from app.models import StaffSession
from app.services import sessions
from app.services.staff import Role

# an id no row can have is refused before it reaches the database (SQLite cannot bind a huge one)
ConsoleId = Annotated[int, Path(ge=1, le=MAX_ID)]


class NeedsSignIn(Exception):
    def __init__(self, next_path: str = "/console/") -> None:
        self.next_path = next_path


class ConsoleForbidden(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class BadForm(Exception):
    """A form posted without a valid CSRF token."""


@dataclass
class ConsoleActor(Actor):
    """The API's Actor, with the console session it came from (the cookie's, and the server's
    row that says it still counts) and that session's form token."""

    session: ConsoleSession
    record: StaffSession
    csrf: str


def session_keys(request: Request) -> SessionKeys:
    keys: SessionKeys = request.app.state.session_keys
    return keys


def console_actor(request: Request, db: SessionDep, ctx: ContextDep) -> ConsoleActor:
    """Who is asking: the cookie must name a session the server still counts (not signed out,
    not idle, not too old, not from before a password change) of an account that may act."""
    now = ctx.clock()
    session = session_keys(request).read(request.cookies.get(COOKIE), now)
    if session is None:
        raise NeedsSignIn(request.url.path)
    record = sessions.current(db, user_id=session.user_id, sid=session.sid, now=now)
    actor = signed_in_actor(request, db, ctx, record.user_id, record.epoch) if record is not None else None
    if record is None or actor is None:
        raise NeedsSignIn(request.url.path)
    csrf = session_keys(request).csrf_token(session.sid)
    return ConsoleActor(**vars(actor), session=session, record=record, csrf=csrf)


def require(role: Role) -> Callable[[ConsoleActor], ConsoleActor]:
    def check(who: Annotated[ConsoleActor, Depends(console_actor)]) -> ConsoleActor:
        if who.role < role:
            raise ConsoleForbidden(
                f"This page is for {role.name} accounts. You are signed in as a {who.role.name}."
            )
        return who

    return check


Nurse = Annotated[ConsoleActor, Depends(require(Role.nurse))]
StaffMember = Annotated[ConsoleActor, Depends(require(Role.staff))]
Admin = Annotated[ConsoleActor, Depends(require(Role.admin))]


async def checked_form(
    request: Request, form: Annotated[dict[str, str], Depends(posted_form)]
) -> dict[str, str]:
    """The posted form, once its CSRF token matches the signed-in session."""
    ctx = request.app.state.context
    session = session_keys(request).read(request.cookies.get(COOKIE), ctx.clock())
    if session is None:
        raise NeedsSignIn(request.url.path)
    if not session_keys(request).csrf_ok(session.sid, form.get("csrf_token")):
        raise BadForm
    return form


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]
