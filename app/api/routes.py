"""/api/v1: thin routes over the services; every read of personal data and every change is audited."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api import convert, schemas
from app.api.deps import AdminActor, NurseActor, StaffActor, client_ip
from app.api.pagination import after, cursor_after, page_params
from app.context import ContextDep
from app.db import SessionDep
from app.models import AttentionFlag, Call, CareTeamMessage, Pair, StaffUser
from app.services import audit, care, participants, queries, staff, stats
from app.services.errors import NotFound
from app.services.staff import TOKEN_LIFETIME, BadCredentials, Locked
from app.settings import Settings

router = APIRouter(prefix="/api/v1")
Paging = Annotated[tuple[int, str | None], Depends(page_params)]
MAX_ID = 2**31 - 1  # ids are 32-bit on both databases; a larger one names nothing
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# ---------------------------------------------------------------- sign-in


@router.post("/auth/token", response_model=schemas.TokenOut, tags=["auth"])
def sign_in(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], db: SessionDep, ctx: ContextDep
) -> schemas.TokenOut:
    """OAuth2 password form (`username` is the email) to a short-lived bearer token."""
    now, ip = ctx.clock(), client_ip(request)
    email = form.username.strip().lower()[:254]
    try:
        user = staff.authenticate(db, email=email, password=form.password, client_ip=ip, now=now)
    except (BadCredentials, Locked) as exc:
        audit.record(
            db, actor=email, action="auth.sign_in_failed", target=str(exc)[:200], client_ip=ip, at=now
        )
        db.commit()
        headers = (
            {"Retry-After": str(exc.retry_after)}
            if isinstance(exc, Locked)
            else {"WWW-Authenticate": "Bearer"}
        )
        raise HTTPException(status_code=exc.status_code, detail=str(exc), headers=headers) from None
    audit.record(
        db, actor=user.email, action="auth.sign_in", target=f"staff_user:{user.id}", client_ip=ip, at=now
    )
    db.commit()
    token = request.app.state.tokens.issue(user, now)
    return schemas.TokenOut(access_token=token, expires_in=int(TOKEN_LIFETIME.total_seconds()))


# ---------------------------------------------------------------- participants


@router.get("/participants", response_model=schemas.PageOut[schemas.ParticipantOut], tags=["participants"])
def list_participants(
    actor: NurseActor,
    db: SessionDep,
    paging: Paging,
    status: Literal["active", "withdrawn"] | None = None,
    search: Annotated[str | None, Query(max_length=120)] = None,
) -> schemas.PageOut[schemas.ParticipantOut]:
    limit, cursor = paging
    found = queries.participants(db, status=status, search=search, after=after(cursor), limit=limit)
    actor.audit(db, "participants.read", f"{len(found)} participants")
    db.commit()
    vault = actor.ctx.vault
    return schemas.PageOut(
        items=[convert.participant(p, vault, full_number=actor.sees_full_numbers) for p in found],
        next_cursor=cursor_after(found.next_key),
    )


@router.post("/participants", status_code=201, response_model=schemas.ParticipantOut, tags=["participants"])
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
    actor.audit(db, "participant.create", f"participant:{person.id}")
    db.commit()
    return convert.participant(person, ctx.vault, full_number=True)


@router.get("/participants/{participant_id}", response_model=schemas.ParticipantOut, tags=["participants"])
def read_participant(participant_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.ParticipantOut:
    person = participants.get(db, participant_id)
    actor.audit(db, "participant.read", f"participant:{person.id}")
    db.commit()
    return convert.participant(person, actor.ctx.vault, full_number=actor.sees_full_numbers)


@router.patch("/participants/{participant_id}", response_model=schemas.ParticipantOut, tags=["participants"])
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
    actor.audit(db, "participant.update", f"participant:{person.id}")
    db.commit()
    return convert.participant(person, actor.ctx.vault, full_number=True)


@router.delete("/participants/{participant_id}", response_model=schemas.ParticipantOut, tags=["participants"])
def remove_participant(participant_id: PathId, actor: StaffActor, db: SessionDep) -> schemas.ParticipantOut:
    """Removal on request: erases the number and its blind index, ends the pair, cancels
    reminders; de-identified call metadata stays for the programme's evaluation."""
    person = participants.remove(db, participants.get(db, participant_id), now=actor.ctx.clock())
    actor.audit(db, "participant.delete", f"participant:{person.id}")
    db.commit()
    return convert.participant(person, actor.ctx.vault, full_number=True)


# ---------------------------------------------------------------- pairs


def _pairs_out(db: Session, rows: list[Pair], actor: NurseActor) -> list[schemas.PairOut]:
    counts = queries.calls_this_period(
        db, [p.id for p in rows], actor.ctx.clock(), actor.ctx.policy.contact_period
    )
    return [convert.pair(p, counts.get(p.id, 0)) for p in rows]


@router.get("/pairs", response_model=schemas.PageOut[schemas.PairOut], tags=["pairs"])
def list_pairs(
    actor: NurseActor,
    db: SessionDep,
    paging: Paging,
    active: bool | None = None,
    participant_id: QueryId = None,
) -> schemas.PageOut[schemas.PairOut]:
    limit, cursor = paging
    found = queries.pairs(
        db,
        active=active,
        participant_id=participant_id,
        after=after(cursor),
        limit=limit,
    )
    return schemas.PageOut(
        items=_pairs_out(db, found.rows, actor),
        next_cursor=cursor_after(found.next_key),
    )


@router.post("/pairs", status_code=201, response_model=schemas.PairOut, tags=["pairs"])
def create_pair(body: schemas.PairIn, actor: StaffActor, db: SessionDep) -> schemas.PairOut:
    a, b = body.participant_ids
    pair = participants.make_pair(db, a, b, now=actor.ctx.clock())
    pair.notes = body.notes
    actor.audit(db, "pair.create", f"pair:{pair.id}")
    db.commit()
    return convert.pair(pair, 0)


@router.get("/pairs/{pair_id}", response_model=schemas.PairOut, tags=["pairs"])
def read_pair(pair_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.PairOut:
    return _pairs_out(db, [participants.get_pair(db, pair_id)], actor)[0]


@router.post("/pairs/{pair_id}/end", response_model=schemas.PairOut, tags=["pairs"])
def end_pair(pair_id: PathId, actor: StaffActor, db: SessionDep) -> schemas.PairOut:
    pair = participants.end_pair(db, participants.get_pair(db, pair_id), now=actor.ctx.clock())
    actor.audit(db, "pair.end", f"pair:{pair.id}")
    db.commit()
    return _pairs_out(db, [pair], actor)[0]


@router.get("/pairs/{pair_id}/stats", response_model=schemas.PairStatsOut, tags=["stats"])
def pair_stats(pair_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.PairStatsOut:
    result = stats.pair_stats(db, participants.get_pair(db, pair_id), actor.ctx.clock())
    return schemas.PairStatsOut.model_validate(result, from_attributes=True)


@router.get("/stats", response_model=schemas.ProgrammeStatsOut, tags=["stats"])
def programme_stats(actor: NurseActor, db: SessionDep) -> schemas.ProgrammeStatsOut:
    result = stats.programme_stats(db, actor.ctx.clock(), actor.ctx.policy.contact_period)
    return schemas.ProgrammeStatsOut.model_validate(result, from_attributes=True)


# ---------------------------------------------------------------- calls


@router.get("/calls", response_model=schemas.PageOut[schemas.CallOut], tags=["calls"])
def list_calls(
    actor: NurseActor,
    db: SessionDep,
    paging: Paging,
    pair_id: QueryId = None,
    participant_id: QueryId = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: Literal[
        "contact", "short", "declined", "no_answer", "busy", "failed", "quiet_hours", "in_progress"
    ]
    | None = None,
) -> schemas.PageOut[schemas.CallOut]:
    limit, cursor = paging
    found = queries.calls(
        db,
        pair_id=pair_id,
        participant_id=participant_id,
        since=_aware(since),
        until=_aware(until),
        outcome=outcome,
        after=after(cursor, (datetime, int)),
        limit=limit,
    )
    scope = f"pair:{pair_id}" if pair_id else f"participant:{participant_id}" if participant_id else "all"
    actor.audit(db, "calls.read", scope)
    db.commit()
    return schemas.PageOut(
        items=[convert.call(c) for c in found],
        next_cursor=cursor_after(found.next_key),
    )


@router.get("/export/calls.csv", tags=["export"], response_class=StreamingResponse)
def export_calls(request: Request, actor: StaffActor, db: SessionDep) -> StreamingResponse:
    """Every call as CSV, for evaluation: participant ids only, no names, no numbers. Streams."""
    actor.audit(db, "export.calls", "calls.csv")
    db.commit()
    make_session = request.app.state.sessionmaker
    return StreamingResponse(
        _csv_rows(make_session),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="peerline-calls.csv"'},
    )


EXPORT_COLUMNS = [
    "call_id",
    "pair_id",
    "kind",
    "initiator_id",
    "callee_id",
    "started_at",
    "accepted_at",
    "ended_at",
    "duration_seconds",
    "outcome",
    "is_contact",
    "notice_version",
]


def _csv_rows(make_session: object, batch: int = 5000) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue()
    last_id = 0
    while True:
        with make_session() as db:  # type: ignore[operator]
            rows = db.execute(
                select(
                    Call.id,
                    Call.pair_id,
                    Call.kind,
                    Call.initiator_id,
                    Call.callee_id,
                    Call.started_at,
                    Call.accepted_at,
                    Call.ended_at,
                    Call.duration_seconds,
                    Call.outcome,
                    Call.notice_version,
                )
                .where(Call.id > last_id)
                .order_by(Call.id)
                .limit(batch)
            ).all()
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        for r in rows:
            writer.writerow(
                [
                    r.id,
                    r.pair_id,
                    r.kind,
                    r.initiator_id,
                    r.callee_id,
                    _iso(r.started_at),
                    _iso(r.accepted_at),
                    _iso(r.ended_at),
                    r.duration_seconds,
                    r.outcome,
                    int(r.outcome == "contact"),
                    r.notice_version,
                ]
            )
        last_id = rows[-1].id
        yield buffer.getvalue()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


# ---------------------------------------------------------------- attention


@router.get("/attention", response_model=schemas.PageOut[schemas.AttentionOut], tags=["attention"])
def list_attention(
    actor: NurseActor,
    db: SessionDep,
    paging: Paging,
    include_cleared: bool = False,
    pair_id: QueryId = None,
) -> schemas.PageOut[schemas.AttentionOut]:
    limit, cursor = paging
    found = queries.attention(
        db,
        open_only=not include_cleared,
        pair_id=pair_id,
        after=after(cursor),
        limit=limit,
    )
    pairs = {p.id: p for p in db.scalars(select(Pair).where(Pair.id.in_({f.pair_id for f in found})))}
    return schemas.PageOut(
        items=[convert.attention(f, pairs.get(f.pair_id)) for f in found],
        next_cursor=cursor_after(found.next_key),
    )


@router.post("/attention/{flag_id}/clear", response_model=schemas.AttentionOut, tags=["attention"])
def clear_attention(
    flag_id: PathId, body: schemas.AttentionClear, actor: StaffActor, db: SessionDep
) -> schemas.AttentionOut:
    """Staff reached out: the pair leaves the list; the flag stays in the pair's history."""
    flag = db.get(AttentionFlag, flag_id)
    if flag is None:
        raise NotFound(f"attention flag {flag_id} does not exist")
    if care.clear_attention(flag, by=actor.email, note=body.note, now=actor.ctx.clock()):
        actor.audit(db, "attention.clear", f"pair:{flag.pair_id}")
    db.commit()
    return convert.attention(flag, db.get(Pair, flag.pair_id))


# ---------------------------------------------------------------- care-team messages


@router.get("/messages", response_model=schemas.PageOut[schemas.MessageOut], tags=["messages"])
def list_messages(
    actor: NurseActor,
    db: SessionDep,
    paging: Paging,
    handled: bool | None = None,
    participant_id: QueryId = None,
) -> schemas.PageOut[schemas.MessageOut]:
    limit, cursor = paging
    found = queries.messages(
        db,
        handled=handled,
        participant_id=participant_id,
        after=after(cursor),
        limit=limit,
    )
    actor.audit(db, "messages.read", f"{len(found)} messages")
    db.commit()
    return schemas.PageOut(
        items=[convert.message(m) for m in found],
        next_cursor=cursor_after(found.next_key),
    )


def _message(db: Session, message_id: PathId) -> CareTeamMessage:
    message = db.get(CareTeamMessage, message_id)
    if message is None:
        raise NotFound(f"message {message_id} does not exist")
    return message


@router.post("/messages/{message_id}/handle", response_model=schemas.MessageOut, tags=["messages"])
def handle_message(message_id: PathId, actor: NurseActor, db: SessionDep) -> schemas.MessageOut:
    message = _message(db, message_id)
    if care.mark_handled(message, by=actor.email, now=actor.ctx.clock()):
        actor.audit(db, "message.handle", f"message:{message.id}")
    db.commit()
    return convert.message(message)


@router.get("/messages/{message_id}/recording", tags=["messages"], response_class=Response)
def message_recording(message_id: PathId, actor: NurseActor, db: SessionDep) -> Response:
    """The recording, fetched from Twilio with the account's credentials: never a public link."""
    message = _message(db, message_id)
    actor.audit(db, "message.listen", f"message:{message.id}")
    db.commit()
    return fetch_recording(actor.ctx.settings, message.recording_sid)


def fetch_recording(settings: Settings, recording_sid: str) -> Response:
    path = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Recordings/{recording_sid}.mp3"
    try:
        upstream = httpx.get(
            settings.twilio_api_url + path,
            auth=(settings.twilio_account_sid, settings.twilio_auth_token),
            timeout=15,
        )
    except httpx.HTTPError:
        raise HTTPException(status_code=502, detail="could not fetch the recording from Twilio") from None
    if upstream.status_code != 200:
        raise HTTPException(
            status_code=502, detail=f"Twilio answered {upstream.status_code} for the recording"
        )
    return Response(upstream.content, media_type=upstream.headers.get("content-type", "audio/mpeg"))


# ---------------------------------------------------------------- audit and staff accounts (admin)


@router.get("/audit", response_model=schemas.PageOut[schemas.AuditOut], tags=["audit"])
def list_audit(
    actor: AdminActor,
    db: SessionDep,
    paging: Paging,
    actor_email: str | None = Query(None, alias="actor"),
    action: str | None = None,
) -> schemas.PageOut[schemas.AuditOut]:
    limit, cursor = paging
    found = queries.audit_events(
        db,
        actor=actor_email,
        action=action,
        after=after(cursor),
        limit=limit,
    )
    actor.audit(db, "audit.read")
    db.commit()
    return schemas.PageOut(
        items=[convert.audit_event(e) for e in found],
        next_cursor=cursor_after(found.next_key),
    )


@router.get("/users", response_model=schemas.PageOut[schemas.UserOut], tags=["users"])
def list_users(actor: AdminActor, db: SessionDep, paging: Paging) -> schemas.PageOut[schemas.UserOut]:
    limit, cursor = paging
    found = queries.users(db, after=after(cursor), limit=limit)
    return schemas.PageOut(
        items=[convert.user(u) for u in found],
        next_cursor=cursor_after(found.next_key),
    )


@router.post("/users", status_code=201, response_model=schemas.UserOut, tags=["users"])
def create_user(body: schemas.UserIn, actor: AdminActor, db: SessionDep) -> schemas.UserOut:
    user = staff.create_user(
        db, email=body.email, password=body.password, role=body.role, now=actor.ctx.clock()
    )
    actor.audit(db, "user.create", f"staff_user:{user.id}")
    db.commit()
    return convert.user(user)


@router.patch("/users/{user_id}", response_model=schemas.UserOut, tags=["users"])
def edit_user(user_id: PathId, body: schemas.UserPatch, actor: AdminActor, db: SessionDep) -> schemas.UserOut:
    user: StaffUser = staff.get_user(db, user_id)
    if user.id == actor.user.id and (body.disabled or (body.role and body.role != "admin")):
        raise HTTPException(status_code=409, detail="you cannot demote or disable your own account")
    if body.role is not None:
        user.role = body.role
    if body.disabled is not None:
        user.disabled_at = actor.ctx.clock() if body.disabled else None
    actor.audit(db, "user.update", f"staff_user:{user.id}")
    db.commit()
    return convert.user(user)
