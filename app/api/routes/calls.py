"""The call log: metadata only, never a conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter

from app.api import convert, schemas
from app.api.deps import NurseActor
from app.api.pagination import page_out
from app.api.params import Paging, QueryId, QueryTime
from app.db import SessionDep
from app.services import queries
from app.services.audit import Action

router = APIRouter(tags=["calls"])


@router.get("/calls", response_model=schemas.PageOut[schemas.CallOut])
def list_calls(
    actor: NurseActor,
    db: SessionDep,
    page: Paging,
    pair_id: QueryId = None,
    participant_id: QueryId = None,
    since: QueryTime = None,
    until: QueryTime = None,
    outcome: Literal[
        "contact", "short", "declined", "no_answer", "busy", "failed", "quiet_hours", "in_progress"
    ]
    | None = None,
) -> schemas.PageOut[schemas.CallOut]:
    found = queries.calls(
        db,
        pair_id=pair_id,
        participant_id=participant_id,
        since=since,
        until=until,
        outcome=outcome,
        after=page.after((datetime, int)),
        limit=page.limit,
    )
    scope = f"pair:{pair_id}" if pair_id else f"participant:{participant_id}" if participant_id else "all"
    actor.audit(db, Action.CALLS_READ, scope)
    return page_out(found, [convert.call(c) for c in found])
