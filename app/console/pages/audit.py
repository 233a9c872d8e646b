"""The audit log (admins): who read or changed what, newest first, optionally for one person."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.pagination import Cursor, after, cursor_after
from app.console.deps import Admin
from app.console.render import page
from app.db import SessionDep
from app.services import queries
from app.services.audit import Action

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 50


@router.get("/audit")
def audit_page(
    request: Request,
    who: Admin,
    db: SessionDep,
    cursor: Cursor = None,
    actor: Annotated[str, Query(max_length=254)] = "",
) -> Response:
    found = queries.audit_events(
        db, actor=actor.strip().lower() or None, action=None, after=after(cursor), limit=PAGE
    )
    who.audit(db, Action.AUDIT_READ)
    return page(
        request, who, "audit.html", events=found.rows, next_cursor=cursor_after(found.next_key), actor=actor
    )
