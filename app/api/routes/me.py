"""Who am I, my own phone for care-team calls, my digest; and calling a participant back."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api import schemas
from app.api.deps import NurseActor
from app.api.params import PathId
from app.db import SessionDep
from app.services import outreach, participants
from app.services.audit import Action
from app.twilio import rest
from app.twilio.outreach import place_staff_leg

router = APIRouter(tags=["me"])


def _me(actor: NurseActor) -> schemas.MeOut:
    found = outreach.me(actor.user, actor.ctx.vault)
    return schemas.MeOut(
        email=found.email,
        role=actor.role.name,
        phone_set=found.phone_set,
        phone_last2=found.phone_last2,
        digest_hour=found.digest_hour,
    )


@router.get("/me", response_model=schemas.MeOut)
def get_me(actor: NurseActor, db: SessionDep) -> schemas.MeOut:
    actor.audit(db, Action.ME_READ, f"staff_user:{actor.user.id}")
    return _me(actor)


@router.put("/me/phone", response_model=schemas.MePhoneOut)
def put_my_phone(body: schemas.MePhoneIn, actor: NurseActor, db: SessionDep) -> schemas.MePhoneOut:
    """Your own phone, rung first when you call a participant back; '' removes it."""
    shown = outreach.set_phone(
        actor.user, actor.ctx.vault, body.phone, region=actor.ctx.settings.default_region
    )
    actor.audit(db, Action.ME_PHONE, f"staff_user:{actor.user.id}")
    return schemas.MePhoneOut(phone=shown or None, phone_set=bool(shown))


@router.put("/me/digest", response_model=schemas.MeOut)
def put_my_digest(body: schemas.DigestIn, actor: NurseActor, db: SessionDep) -> schemas.MeOut:
    """The daily digest (counts only) at this hour in the programme's zone; null: none."""
    outreach.set_digest_hour(actor.user, body.hour)
    actor.audit(db, Action.ME_DIGEST, f"staff_user:{actor.user.id}")
    return _me(actor)


@router.post("/participants/{participant_id}/call", status_code=202, response_model=schemas.CallStarted)
def call_participant(
    participant_id: PathId,
    actor: NurseActor,
    db: SessionDep,
    request: Request,
    body: schemas.CallIn | None = None,
) -> schemas.CallStarted | JSONResponse:
    """Ring your own phone from the programme's number, then, when you press 1, the participant's.

    Neither side sees the other's number. In the participant's quiet hours, a `quiet_hours_reason`
    is required (the override is audited)."""
    person = participants.get(db, participant_id)
    reason = body.quiet_hours_reason if body is not None else None
    quiet = outreach.in_quiet_hours(person, actor.ctx.clock()) is not None
    call = outreach.start(
        db, actor.ctx.vault, actor.user, person, now=actor.ctx.clock(), override_reason=reason
    )
    actor.audit(db, Action.OUTREACH_CALL, f"participant:{person.id}")
    if quiet:
        actor.audit(db, Action.OUTREACH_QUIET_OVERRIDE, f"participant:{person.id}")
    call_id = call.id
    # the row is committed before the staff member's phone rings: its answer webhook finds it
    db.commit()
    result = place_staff_leg(request.app, call_id)
    if not isinstance(result, rest.Placed):
        return JSONResponse(
            {"detail": f"your phone could not be rung: {result.detail}", "call_id": call_id}, status_code=502
        )
    return schemas.CallStarted(call_id=call_id)
