"""The care-team inbox: messages participants left, their recordings, who handled them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api import convert, schemas
from app.api.deps import NurseActor
from app.api.pagination import page_out
from app.api.params import Paging, PathId, QueryId
from app.api.recording import recording_response
from app.db import SessionDep
from app.services import care, queries
from app.services.audit import Action

router = APIRouter(tags=["messages"])


@router.get("/messages", response_model=schemas.PageOut[schemas.MessageOut])
def list_messages(
    actor: NurseActor,
    db: SessionDep,
    page: Paging,
    handled: bool | None = None,
    participant_id: QueryId = None,
) -> schemas.PageOut[schemas.MessageOut]:
    found = queries.messages(
        db, handled=handled, participant_id=participant_id, after=page.after(), limit=page.limit
    )
    actor.audit(db, Action.MESSAGES_READ, f"{len(found)} messages")
    return page_out(found, [convert.message(m) for m in found])


@router.post("/messages/{message_id}/handle", response_model=schemas.MessageOut)
def handle_message(
    message_id: PathId, actor: NurseActor, db: SessionDep, body: schemas.MessageHandle | None = None
) -> schemas.MessageOut:
    """Mark a message handled, with a short note of what was done (optional)."""
    message = care.get_message(db, message_id)
    note = body.note if body is not None else ""
    if care.mark_handled(message, by=actor.email, now=actor.ctx.clock(), note=note):
        actor.audit(db, Action.MESSAGE_HANDLE, f"message:{message.id}")
    return convert.message(message)


@router.get("/messages/{message_id}/recording", response_class=Response)
def message_recording(message_id: PathId, actor: NurseActor, db: SessionDep) -> Response:
    """The recording, fetched from Twilio with the account's credentials: never a public link."""
    message = care.get_message(db, message_id)
    actor.audit(db, Action.MESSAGE_LISTEN, f"message:{message.id}")
    return recording_response(actor.ctx.settings, message.recording_sid)
