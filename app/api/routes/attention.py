"""The attention list: pairs that have stopped talking, until staff have reached out."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import convert, schemas
from app.api.deps import NurseActor
from app.api.pagination import page_out
from app.api.params import Paging, PathId, QueryId
from app.db import SessionDep
from app.services import care, queries
from app.services.audit import Action

router = APIRouter(tags=["attention"])


@router.get("/attention", response_model=schemas.PageOut[schemas.AttentionOut])
def list_attention(
    actor: NurseActor,
    db: SessionDep,
    page: Paging,
    include_cleared: bool = False,
    pair_id: QueryId = None,
) -> schemas.PageOut[schemas.AttentionOut]:
    found = queries.attention(
        db, open_only=not include_cleared, pair_id=pair_id, after=page.after(), limit=page.limit
    )
    pairs = queries.pairs_by_id(db, (f.pair_id for f in found))
    actor.audit(db, Action.ATTENTION_READ, f"{len(found)} pairs")
    return page_out(found, [convert.attention(f, pairs.get(f.pair_id)) for f in found])


@router.post("/attention/{flag_id}/clear", response_model=schemas.AttentionOut)
def clear_attention(
    flag_id: PathId, body: schemas.AttentionClear, actor: NurseActor, db: SessionDep
) -> schemas.AttentionOut:
    """A nurse or staff member reached out: the pair leaves the list; the flag stays in the pair's history."""
    flag = care.get_attention_flag(db, flag_id)
    if care.clear_attention(flag, by=actor.email, note=body.note, now=actor.ctx.clock()):
        actor.audit(db, Action.ATTENTION_CLEAR, f"pair:{flag.pair_id}")
    return convert.attention(flag, queries.pairs_by_id(db, [flag.pair_id]).get(flag.pair_id))
