"""Participants: enrol, read, edit, and remove a number on request."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api import convert, schemas
from app.api.deps import NurseActor, StaffActor
from app.api.pagination import page_out
from app.api.params import Paging, PathId
from app.db import SessionDep
from app.services import participants, queries
from app.services.audit import Action

router = APIRouter(tags=["participants"])


@router.get("/participants", response_model=schemas.PageOut[schemas.ParticipantOut])
def list_participants(
    actor: NurseActor,
    db: SessionDep,
    page: Paging,
    status: Literal["active", "withdrawn"] | None = None,
    search: Annotated[str | None, Query(max_length=120)] = None,
) -> schemas.PageOut[schemas.ParticipantOut]:
    found = queries.participants(db, status=status, search=search, after=page.after(), limit=page.limit)
    actor.audit(db, Action.PARTICIPANTS_READ, f"{len(found)} participants")
    vault = actor.ctx.vault
    return page_out(
        found, [convert.participant(p, vault, full_number=actor.sees_full_numbers) for p in found]
    )


@router.post("/participants", status_code=201, response_model=schemas.ParticipantOut)
def create_participant(
    body: schemas.ParticipantIn, actor: StaffActor, db: SessionDep
) -> schemas.ParticipantOut:
    ctx = actor.ctx
    person = participants.enrol(
        db,
        ctx.vault,
        name=body.name,
        phone=body.phone,
        timezone=body.timezone,
        quiet_hours=body.quiet_hours,
        language=body.language,
        region=ctx.settings.default_region,
        now=ctx.clock(),
    )
    actor.audit(db, Action.PARTICIPANT_CREATE, f"participant:{person.id}")
    return convert.participant(person, ctx.vault, full_number=True)


@router.get("/participants/{participant_id}", response_model=schemas.ParticipantOut)
def read_participant(participant_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.ParticipantOut:
    person = participants.get(db, participant_id)
    actor.audit(db, Action.PARTICIPANT_READ, f"participant:{person.id}")
    return convert.participant(person, actor.ctx.vault, full_number=actor.sees_full_numbers)


@router.patch("/participants/{participant_id}", response_model=schemas.ParticipantOut)
def edit_participant(
    participant_id: PathId, body: schemas.ParticipantPatch, actor: StaffActor, db: SessionDep
) -> schemas.ParticipantOut:
    person = participants.update_details(
        db,
        participants.get(db, participant_id),
        name=body.name,
        timezone=body.timezone,
        quiet_hours=body.quiet_hours,
        language=body.language,
    )
    actor.audit(db, Action.PARTICIPANT_UPDATE, f"participant:{person.id}")
    return convert.participant(person, actor.ctx.vault, full_number=True)


@router.delete("/participants/{participant_id}", response_model=schemas.ParticipantOut)
def remove_participant(participant_id: PathId, actor: StaffActor, db: SessionDep) -> schemas.ParticipantOut:
    """Removal on request.

    **Erased**: the phone number (its ciphertext) and its blind index; the caller-ID index on
    every call that carries the number's index or that the participant made or received;
    keyed-ID lockout rows under that index or on those calls. No row is left from which the
    number could be tied back to this participant, even by someone holding `SECRET_KEY`.
    Her pair is ended and reminder calls still waiting are cancelled.

    **Kept**: the participant (name or alias, `status: "withdrawn"`, `phone: null`), the
    de-identified call metadata (when, how long, how each call ended) so programme figures
    stay true, care-team messages (the recordings stay at Twilio until deleted there), and the
    audit trail. A later call from the number is an unknown caller; the number can be enrolled
    again as a new participant."""
    person = participants.remove(
        db, actor.ctx.vault, participants.get(db, participant_id), now=actor.ctx.clock()
    )
    actor.audit(db, Action.PARTICIPANT_DELETE, f"participant:{person.id}")
    return convert.participant(person, actor.ctx.vault, full_number=True)
