"""Pairs: the list with each pair's last twelve weeks, one pair's page, making and ending pairs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.pagination import MAX_ID, Cursor, after, cursor_after
from app.console.deps import CheckedForm, ConsoleActor, ConsoleId, Nurse, StaffMember
from app.console.forms import form_id
from app.console.render import error_page, go, page
from app.db import SessionDep
from app.services import pair_overview, participants, queries, stats
from app.services.audit import Action
from app.services.errors import NotFound, ServiceError
from ivr.quiet_hours import zone

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 25
NOTES_LENGTH = 5000  # as the API's PairIn.notes
Show = Literal["active", "ended", "all"]
ACTIVE: dict[Show, bool | None] = {"active": True, "ended": False, "all": None}
Sort = Literal["newest", "quietest"]
MAX_QUIET_DAYS = 3650  # ten years: more names no pair, and keeps the date arithmetic in range


@router.get("/pairs")
def pairs_page(
    request: Request,
    who: Nurse,
    db: SessionDep,
    q: Annotated[str, Query(max_length=120)] = "",
    show: Annotated[Show, Query()] = "active",
    sort: Annotated[Sort, Query()] = "newest",
    quiet: Annotated[int, Query(ge=0, le=MAX_QUIET_DAYS)] = 0,
    cursor: Cursor = None,
) -> Response:
    ctx = who.ctx
    now = ctx.clock()
    quietest = sort == "quietest"
    found = queries.pairs(
        db,
        active=ACTIVE[show],
        participant_id=None,
        name=q.strip() or None,
        quiet_before=now - timedelta(days=quiet) if quiet else None,
        quietest_first=quietest,
        after=after(cursor, (datetime, int)) if quietest else after(cursor),
        limit=PAGE,
    )
    tz = zone(ctx.settings.programme_timezone)
    rows = pair_overview.pair_rows(db, found.rows, now, ctx.policy.contact_period, tz)
    who.audit(db, Action.PAIRS_READ, f"{len(rows)} pairs")
    period_days = ctx.policy.contact_period.days or 1
    return page(
        request,
        who,
        "pairs.html",
        rows=rows,
        q=q,
        show=show,
        sort=sort,
        quiet=quiet,
        # "no contact for at least…": one, two (the attention list's rule) and four periods
        quiet_choices=[period_days, 2 * period_days, 4 * period_days],
        period_days=period_days,
        period_start=now - ctx.policy.contact_period,
        next_cursor=cursor_after(found.next_key),
        strip_weeks=pair_overview.strip_weeks(now, tz),
        now=now,
    )


def _new_pair_page(
    request: Request,
    who: ConsoleActor,
    db: Session,
    first: int | None,
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    free = pair_overview.unpaired_participants(db)
    who.audit(db, Action.PARTICIPANTS_READ, f"{len(free)} unpaired participants")
    return page(request, who, "pair_new.html", status_code, free=free, first=first, errors=errors)


# before /pairs/{pair_id}, which would otherwise take "new" for an id
@router.get("/pairs/new")
def new_pair_form(
    request: Request,
    who: StaffMember,
    db: SessionDep,
    with_: Annotated[int | None, Query(alias="with", ge=1, le=MAX_ID)] = None,
) -> Response:
    return _new_pair_page(request, who, db, with_, {})


@router.post("/pairs")
def create_pair(request: Request, who: StaffMember, form: CheckedForm, db: SessionDep) -> Response:
    a, b = form_id(form.get("first")), form_id(form.get("second"))
    if a is None or b is None:
        return _new_pair_page(request, who, db, None, {"second": "Choose two participants."}, 400)
    try:
        pair = participants.make_pair(db, a, b, now=who.ctx.clock())
    except ServiceError as exc:
        # a pairing that lost a race has its new row flushed: nothing of it may be committed
        db.rollback()
        return _new_pair_page(request, who, db, None, {"second": str(exc)}, 400)
    who.audit(db, Action.PAIR_CREATE, f"pair:{pair.id}")
    return go(request, who, f"/console/pairs/{pair.id}")


@router.get("/pairs/{pair_id}")
def pair_page(request: Request, who: Nurse, db: SessionDep, pair_id: ConsoleId) -> Response:
    ctx = who.ctx
    try:
        pair = participants.get_pair(db, pair_id)
    except NotFound:
        return error_page(request, 404, "No such pair", f"There is no pair {pair_id}.", who)
    (row,) = pair_overview.pair_rows(
        db, [pair], ctx.clock(), ctx.policy.contact_period, zone(ctx.settings.programme_timezone)
    )
    who.audit(db, Action.PAIR_READ, f"pair:{pair.id}")
    return page(
        request,
        who,
        "pair.html",
        pair=pair,
        people=queries.participants_by_id(db, [pair.participant_a_id, pair.participant_b_id]),
        calls=queries.calls(db, pair_id=pair.id, limit=100),
        figures=stats.pair_stats(db, pair, ctx.clock()),
        flags=queries.attention(db, open_only=False, pair_id=pair.id, after=None, limit=20),
        messages=[
            msg
            for pid in (pair.participant_a_id, pair.participant_b_id)
            for msg in queries.messages(db, handled=None, participant_id=pid, after=None, limit=20)
        ],
        reminders=pair_overview.reminders_of_pair(db, pair.id),
        row=row,
        now=ctx.clock(),
    )


@router.post("/pairs/{pair_id}/notes")
def pair_notes(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, pair_id: ConsoleId
) -> Response:
    pair = participants.get_pair(db, pair_id)
    notes = form.get("notes", "")
    if len(notes) > NOTES_LENGTH:
        # refused, not cut: a note cut short could lose what mattered most, at its end
        return error_page(
            request,
            422,
            "These notes are too long",
            f"Notes hold at most {NOTES_LENGTH:,} characters; these had {len(notes):,}. "
            "Go back, shorten them and save again.",
            who,
        )
    pair.notes = notes
    who.audit(db, Action.PAIR_NOTES, f"pair:{pair.id}")
    return go(request, who, f"/console/pairs/{pair.id}#notes")


@router.post("/pairs/{pair_id}/end")
def pair_end(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, pair_id: ConsoleId
) -> Response:
    pair = participants.end_pair(db, participants.get_pair(db, pair_id), now=who.ctx.clock())
    who.audit(db, Action.PAIR_END, f"pair:{pair.id}")
    return go(request, who, f"/console/pairs/{pair.id}")
