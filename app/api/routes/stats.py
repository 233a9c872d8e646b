"""Programme and pair figures for evaluation."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import schemas
from app.api.deps import NurseActor
from app.api.params import PathId
from app.db import SessionDep
from app.services import participants, stats
from app.services.audit import Action
from ivr.quiet_hours import zone

router = APIRouter(tags=["stats"])


@router.get("/pairs/{pair_id}/stats", response_model=schemas.PairStatsOut)
def pair_stats(pair_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.PairStatsOut:
    pair = participants.get_pair(db, pair_id)
    result = stats.pair_stats(db, pair, actor.ctx.clock())
    actor.audit(db, Action.STATS_READ, f"pair:{pair.id}")
    return schemas.PairStatsOut.model_validate(result, from_attributes=True)


@router.get("/stats", response_model=schemas.ProgrammeStatsOut)
def programme_stats(actor: NurseActor, db: SessionDep) -> schemas.ProgrammeStatsOut:
    """The programme now. `by_week` holds the last twelve calendar weeks in PROGRAMME_TIMEZONE
    (Monday 00:00 local to the next Monday), the last being the current week so far: the same
    weeks whoever asks and whenever, unlike windows that end at the moment of the request."""
    settings = actor.ctx.settings
    result = stats.programme_stats(
        db, actor.ctx.clock(), actor.ctx.policy.contact_period, zone(settings.programme_timezone)
    )
    actor.audit(db, Action.STATS_READ, "programme")
    return schemas.ProgrammeStatsOut.model_validate(result, from_attributes=True)
