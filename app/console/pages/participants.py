"""Participants (staff and admins): the list, enrolling, one participant's page, edits, removal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api import convert
from app.api.pagination import Cursor, after, cursor_after
from app.console.deps import CheckedForm, ConsoleActor, ConsoleId, Nurse, StaffMember
from app.console.forms import COMMON_ZONES, field_errors, zones
from app.console.render import error_page, go, page
from app.db import SessionDep
from app.models import Participant
from app.services import pair_overview, participants, queries
from app.services.audit import Action
from app.services.errors import NotFound, ServiceError

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 25
# a participant is re-paired a handful of times at most; the page lists them all
HISTORY = 100


def _phone(who: ConsoleActor, person: Participant) -> str | None:
    """The number as this staff member's role may see it: the API's rule, in one place."""
    return convert.participant(person, who.ctx.vault, full_number=who.sees_full_numbers).phone


@router.get("/participants")
def participants_page(
    request: Request,
    who: StaffMember,
    db: SessionDep,
    q: Annotated[str, Query(max_length=120)] = "",
    cursor: Cursor = None,
) -> Response:
    found = queries.participants(db, status=None, search=q.strip() or None, after=after(cursor), limit=PAGE)
    phones = {p.id: _phone(who, p) for p in found}
    who.audit(db, Action.PARTICIPANTS_READ, f"{len(found)} participants")
    return page(
        request,
        who,
        "participants.html",
        people=found.rows,
        phones=phones,
        q=q,
        next_cursor=cursor_after(found.next_key),
    )


def _form_again(
    request: Request, who: ConsoleActor, values: dict[str, str], errors: dict[str, str]
) -> Response:
    """The enrolment form with what was typed and what is wrong with it."""
    return page(
        request,
        who,
        "participant_form.html",
        status_code=400,
        person=None,
        values=values,
        errors=errors,
        zones=zones(),
    )


# before /participants/{participant_id}, which would otherwise take "new" for an id
@router.get("/participants/new")
def new_participant_form(request: Request, who: StaffMember) -> Response:
    return page(
        request,
        who,
        "participant_form.html",
        person=None,
        values={"timezone": COMMON_ZONES[0]},
        errors={},
        zones=zones(),
    )


@router.post("/participants")
def create_participant(request: Request, who: StaffMember, form: CheckedForm, db: SessionDep) -> Response:
    ctx = who.ctx
    problems = participants.enrolment_problems(
        name=form.get("name", ""),
        phone=form.get("phone", ""),
        timezone=form.get("timezone", ""),
        quiet_hours=form.get("quiet_hours") or None,
        region=ctx.settings.default_region,
        language=form.get("language") or "en",
    )
    if problems:
        return _form_again(request, who, form, field_errors(*problems))
    try:
        person = participants.enrol(
            db,
            ctx.vault,
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            timezone=form.get("timezone", ""),
            quiet_hours=form.get("quiet_hours") or None,
            language=form.get("language") or "en",
            region=ctx.settings.default_region,
            now=ctx.clock(),
        )
    except ServiceError as exc:
        db.rollback()
        return _form_again(request, who, form, field_errors(exc))
    who.audit(db, Action.PARTICIPANT_CREATE, f"participant:{person.id}")
    return go(request, who, f"/console/participants/{person.id}?created=1")


def _participant_page(
    request: Request,
    who: ConsoleActor,
    db: Session,
    person: Participant,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
    created: bool = False,
) -> Response:
    history = queries.pairs(db, active=None, participant_id=person.id, after=None, limit=HISTORY).rows
    # the page shows the number: a read, whether or not an edit was refused
    who.audit(db, Action.PARTICIPANT_READ, f"participant:{person.id}")
    return page(
        request,
        who,
        "participant_form.html",
        status_code=status_code,
        person=person,
        phone=_phone(who, person),
        values=values,
        errors=errors,
        zones=zones(person.timezone),
        created=created,
        history=history,
        names=pair_overview.names_for_pairs(db, [p.id for p in history]),
    )


@router.get("/participants/{participant_id}")
def participant_page(
    request: Request, who: Nurse, db: SessionDep, participant_id: ConsoleId, created: int = 0
) -> Response:
    try:
        person = participants.get(db, participant_id)
    except NotFound:
        return error_page(
            request, 404, "No such participant", f"There is no participant {participant_id}.", who
        )
    values = {
        "name": person.name,
        "timezone": person.timezone,
        "quiet_hours": person.quiet_hours or "",
        "language": person.language,
    }
    return _participant_page(request, who, db, person, values=values, errors={}, created=bool(created))


@router.post("/participants/{participant_id}")
def edit_participant(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, participant_id: ConsoleId
) -> Response:
    person = participants.get(db, participant_id)
    try:
        participants.update_details(
            db,
            person,
            name=form.get("name"),
            timezone=form.get("timezone"),
            quiet_hours=form.get("quiet_hours", ""),
            language=form.get("language") or None,
        )
    except ServiceError as exc:
        # fields checked before the one that failed are already set: none of them may be stored
        db.rollback()
        return _participant_page(
            request, who, db, person, values=form, errors=field_errors(exc), status_code=400
        )
    who.audit(db, Action.PARTICIPANT_UPDATE, f"participant:{person.id}")
    return go(request, who, f"/console/participants/{person.id}")


@router.get("/participants/{participant_id}/remove")
def remove_confirmation(
    request: Request, who: StaffMember, db: SessionDep, participant_id: ConsoleId
) -> Response:
    person = participants.get(db, participant_id)
    who.audit(db, Action.PARTICIPANT_READ, f"participant:{person.id}")
    return page(request, who, "participant_remove.html", person=person)


@router.post("/participants/{participant_id}/remove")
def remove_participant(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, participant_id: ConsoleId
) -> Response:
    person = participants.remove(db, who.ctx.vault, participants.get(db, participant_id), now=who.ctx.clock())
    who.audit(db, Action.PARTICIPANT_DELETE, f"participant:{person.id}")
    return go(request, who, f"/console/participants/{person.id}")
