"""The console's Call button: ring my phone, then the participant's; neither number is shown."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.console.deps import CheckedForm, ConsoleId, Nurse
from app.console.render import error_page, page
from app.db import SessionDep
from app.services import outreach, participants
from app.services.audit import Action
from app.services.errors import NotFound
from app.twilio import rest
from app.twilio.outreach import place_staff_leg

router = APIRouter(prefix="/console", include_in_schema=False)


@router.post("/participants/{participant_id}/call")
def call_participant(
    request: Request, who: Nurse, form: CheckedForm, db: SessionDep, participant_id: ConsoleId
) -> Response:
    try:
        person = participants.get(db, participant_id)
    except NotFound:
        return error_page(
            request, 404, "No such participant", f"There is no participant {participant_id}.", who
        )
    if outreach.staff_phone(who.user, who.ctx.vault) is None:
        return page(
            request, who, "call.html", 409, person=person, state="no-phone", origin=form.get("origin", "")
        )
    reason = form.get("reason", "").strip()
    quiet = outreach.in_quiet_hours(person, who.ctx.clock())
    if quiet is not None and not reason:
        # ask first: the participant asked not to be rung now
        return page(
            request,
            who,
            "call.html",
            409,
            person=person,
            state="quiet",
            quiet_until=quiet,
            origin=form.get("origin", ""),
        )
    call = outreach.start(db, who.ctx.vault, who.user, person, now=who.ctx.clock(), override_reason=reason)
    who.audit(db, Action.OUTREACH_CALL, f"participant:{person.id}")
    if quiet is not None:
        who.audit(db, Action.OUTREACH_QUIET_OVERRIDE, f"participant:{person.id}")
    call_id = call.id
    db.commit()
    result = place_staff_leg(request.app, call_id)
    placed = isinstance(result, rest.Placed)
    return page(
        request,
        who,
        "call.html",
        202 if placed else 502,
        person=person,
        state="ringing" if placed else "failed",
        detail=None if isinstance(result, rest.Placed) else result.detail,
        call_id=call_id,
        origin=form.get("origin", ""),
    )
