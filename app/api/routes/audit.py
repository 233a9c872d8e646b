"""The audit trail, for admins: read only; no route edits or deletes an event."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api import convert, schemas
from app.api.deps import AdminActor
from app.api.pagination import page_out
from app.api.params import Paging
from app.db import SessionDep
from app.services import queries
from app.services.audit import Action

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=schemas.PageOut[schemas.AuditOut])
def list_audit(
    actor: AdminActor,
    db: SessionDep,
    page: Paging,
    actor_email: str | None = Query(None, alias="actor", max_length=254),
    action: str | None = Query(None, max_length=64),
) -> schemas.PageOut[schemas.AuditOut]:
    found = queries.audit_events(db, actor=actor_email, action=action, after=page.after(), limit=page.limit)
    actor.audit(db, Action.AUDIT_READ)
    return page_out(found, [convert.audit_event(e) for e in found])
