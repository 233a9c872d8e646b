"""The attention list: pairs quiet for two contact periods, and nurses or staff saying they reached out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.console.deps import CheckedForm, ConsoleId, Nurse
from app.console.render import go, note_too_long, page
from app.db import SessionDep
from app.services import care, pair_overview, queries
from app.services.audit import Action
from app.services.errors import NotFound

router = APIRouter(prefix="/console", include_in_schema=False)
SHOWN = 200


@router.get("/attention")
def attention_page(request: Request, who: Nurse, db: SessionDep) -> Response:
    flags = queries.attention(db, open_only=True, pair_id=None, after=None, limit=SHOWN)
    flagged = [f.pair_id for f in flags]
    pairs = queries.pairs_by_id(db, flagged)
    partner_ids = [i for p in pairs.values() for i in (p.participant_a_id, p.participant_b_id)]
    who.audit(db, Action.ATTENTION_READ, f"{len(flags)} pairs")
    return page(
        request,
        who,
        "attention.html",
        flags=flags,
        names=pair_overview.names_for_pairs(db, flagged),
        pairs=pairs,
        people=queries.participants_by_id(db, partner_ids),
    )


@router.post("/attention/{flag_id}/clear")
def clear_attention(
    request: Request, who: Nurse, form: CheckedForm, db: SessionDep, flag_id: ConsoleId
) -> Response:
    try:
        flag = care.get_attention_flag(db, flag_id)
    except NotFound:
        # nothing to clear: back to the list, as after a double post
        return go(request, who, "/console/attention")
    note = form.get("note", "")
    if (refusal := note_too_long(request, note, who)) is not None:
        return refusal
    if care.clear_attention(flag, by=who.email, note=note, now=who.ctx.clock()):
        who.audit(db, Action.ATTENTION_CLEAR, f"pair:{flag.pair_id}")
    return go(request, who, "/console/attention")
