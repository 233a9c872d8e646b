"""Engagement as the trials measured it: the programme (or one pairing cohort) and one pair.

Included by the lead into /api/v1 beside the other resources (app/api/routes/__init__.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import NurseActor
from app.api.engagement_schemas import EngagementOut
from app.api.params import PathId
from app.db import SessionDep
from app.services import engagement
from app.services.audit import Action

router = APIRouter(tags=["engagement"])

COHORT = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
Cohort = Annotated[
    str | None,
    Query(
        pattern=COHORT,
        description="month of pairing, YYYY-MM, in the programme's zone (PROGRAMME_TIMEZONE)",
        examples=["2026-03"],
    ),
]


@router.get("/stats/engagement", response_model=EngagementOut)
def programme_engagement(actor: NurseActor, db: SessionDep, cohort: Cohort = None) -> EngagementOut:
    """Calls and minutes by month since pairing, weekly contact, who engaged, reminders, messages."""
    ctx = actor.ctx
    settings = ctx.settings
    history = engagement.history_for(db, settings.programme_timezone)
    with engagement.reading(db) as snapshot:
        figures = engagement.programme(
            snapshot,
            now=ctx.clock(),
            tz=settings.programme_timezone,
            engaged_when=settings.engaged_when,
            cohort=cohort,
            history=history,
        )
    actor.audit(db, Action.ENGAGEMENT_READ, f"cohort:{cohort}" if cohort else "programme")
    return EngagementOut.model_validate(figures)


@router.get("/pairs/{pair_id}/engagement", response_model=EngagementOut)
def pair_engagement(pair_id: PathId, actor: NurseActor, db: SessionDep) -> EngagementOut:
    """One pair's figures: the same shape, `pairs` is 1, plus who started the calls."""
    ctx = actor.ctx
    settings = ctx.settings
    figures = engagement.for_pair(
        db, pair_id, now=ctx.clock(), tz=settings.programme_timezone, engaged_when=settings.engaged_when
    )
    actor.audit(db, Action.ENGAGEMENT_READ, f"pair:{pair_id}")
    return EngagementOut.model_validate(figures)
