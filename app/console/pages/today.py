"""Today: the programme at a glance, the pairs that need attention, new messages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.console.deps import Nurse
from app.console.render import page
from app.db import SessionDep
from app.services import pair_overview, queries, stats
from app.services.audit import Action
from ivr.quiet_hours import zone

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/")
def today(request: Request, who: Nurse, db: SessionDep) -> Response:
    ctx = who.ctx
    now = ctx.clock()
    figures = stats.programme_stats(db, now, ctx.policy.contact_period, zone(ctx.settings.programme_timezone))
    flags = queries.attention(db, open_only=True, pair_id=None, after=None, limit=10)
    new_messages = queries.messages(db, handled=False, participant_id=None, after=None, limit=10)
    flagged = [f.pair_id for f in flags]
    who.audit(db, Action.TODAY_READ)
    return page(
        request,
        who,
        "today.html",
        figures=figures,
        flags=flags,
        names=pair_overview.names_for_pairs(db, flagged),
        pairs=queries.pairs_by_id(db, flagged),
        messages=new_messages,
        people=queries.participants_by_id(db, [m.participant_id for m in new_messages if m.participant_id]),
        now=now,
    )


@router.get("")
def console_root() -> Response:
    return RedirectResponse("/console/", status_code=307)
