"""Pairs: make, read, end."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.api import convert, schemas
from app.api.deps import Actor, NurseActor, StaffActor
from app.api.pagination import page_out
from app.api.params import Paging, PathId, QueryId
from app.db import SessionDep
from app.models import Pair
from app.services import pair_overview, participants, queries
from app.services.audit import Action

router = APIRouter(tags=["pairs"])


def pairs_out(db: Session, rows: list[Pair], actor: Actor) -> list[schemas.PairOut]:
    """Pairs as the console shows them: the same contacts this period (one measure, one
    name), the period's dates, and the partners' names beside their ids."""
    now, period = actor.ctx.clock(), actor.ctx.policy.contact_period
    ids = [p.id for p in rows]
    counts = queries.calls_this_period(db, ids, now, period)
    contacts = pair_overview.contacts_this_period(db, ids, now, period)
    people = queries.participants_by_id(
        db, [i for p in rows for i in (p.participant_a_id, p.participant_b_id)]
    )
    none = pair_overview.ThisPeriod(0, 0)
    out = []
    for p in rows:
        got = contacts.get(p.id, none)
        partners = [
            schemas.PartnerOut(id=pid, name=people[pid].name if pid in people else None, side=side)
            for pid, side in ((p.participant_a_id, "a"), (p.participant_b_id, "b"))
        ]
        out.append(
            convert.pair(p, counts.get(p.id, 0)).model_copy(
                update={
                    "contacts_this_period": got.contacts,
                    "talk_seconds_this_period": got.seconds,
                    "period_start": now - period,
                    "period_end": now,
                    "days_since_contact": max((now - (p.last_contact_at or p.started_at)).days, 0),
                    "partners": partners,
                }
            )
        )
    return out


@router.get("/pairs", response_model=schemas.PageOut[schemas.PairOut])
def list_pairs(
    actor: NurseActor,
    db: SessionDep,
    page: Paging,
    active: bool | None = None,
    participant_id: QueryId = None,
    days_since_contact: Annotated[
        int | None,
        Query(
            ge=0,
            le=3650,
            description="only pairs without a contact (nor pairing) for at least this many days",
        ),
    ] = None,
) -> schemas.PageOut[schemas.PairOut]:
    # the console's "days since last contact" filter, with the same field name as each pair's figure
    quiet_before = actor.ctx.clock() - timedelta(days=days_since_contact) if days_since_contact else None
    found = queries.pairs(
        db,
        active=active,
        participant_id=participant_id,
        quiet_before=quiet_before,
        after=page.after(),
        limit=page.limit,
    )
    actor.audit(db, Action.PAIRS_READ, f"{len(found)} pairs")
    return page_out(found, pairs_out(db, found.rows, actor))


@router.post("/pairs", status_code=201, response_model=schemas.PairOut)
def create_pair(body: schemas.PairIn, actor: StaffActor, db: SessionDep) -> schemas.PairOut:
    a, b = body.participant_ids
    pair = participants.make_pair(db, a, b, now=actor.ctx.clock(), notes=body.notes)
    actor.audit(db, Action.PAIR_CREATE, f"pair:{pair.id}")
    return pairs_out(db, [pair], actor)[0]


@router.get("/pairs/{pair_id}", response_model=schemas.PairOut)
def read_pair(pair_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.PairOut:
    pair = participants.get_pair(db, pair_id)
    actor.audit(db, Action.PAIR_READ, f"pair:{pair.id}")
    return pairs_out(db, [pair], actor)[0]


@router.post("/pairs/{pair_id}/end", response_model=schemas.PairOut)
def end_pair(pair_id: PathId, actor: StaffActor, db: SessionDep) -> schemas.PairOut:
    pair = participants.end_pair(db, participants.get_pair(db, pair_id), now=actor.ctx.clock())
    actor.audit(db, Action.PAIR_END, f"pair:{pair.id}")
    return pairs_out(db, [pair], actor)[0]
