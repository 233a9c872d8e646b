"""Console pages. Each handler: who is asking, the same services as the API, a template.

No business logic lives here: enrolment, pairing, removal, sign-in and the audit trail
are the API's services, with the API's roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.api import convert
from app.api.deps import Actor, client_ip
from app.api.pagination import after, cursor_after
from app.console.session import COOKIE, IDLE_TIMEOUT, LOGIN_COOKIE, ConsoleSession, SessionKeys
from app.context import ContextDep
from app.db import SessionDep
from app.models import AttentionFlag, Call, CareTeamMessage, Pair, Participant, Reminder, StaffUser
from app.services import audit, care, participants, queries, staff, stats
from app.services.errors import ServiceError
from app.services.staff import BadCredentials, Locked, Role
from ivr.quiet_hours import known_zones, zone

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


@pass_context
def _local(context: Any, moment: datetime | None) -> datetime | None:
    """A stored UTC time in the zone the programme works in (CONSOLE_TIMEZONE)."""
    if moment is None:
        return None
    settings = context["request"].app.state.context.settings
    return moment.astimezone(zone(settings.console_timezone))


TEMPLATES.env.filters["local"] = _local
router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 25
COMMON_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
]


class NeedsSignIn(Exception):
    def __init__(self, next_path: str = "/console/") -> None:
        self.next_path = next_path


class ConsoleForbidden(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class BadForm(Exception):
    """A form posted without a valid CSRF token."""


@dataclass
class ConsoleActor:
    actor: Actor
    session: ConsoleSession
    csrf: str

    @property
    def role(self) -> Role:
        return self.actor.role

    def audit(self, db: Session, action: str, target: str | None = None) -> None:
        self.actor.audit(db, action, target)


def _keys(request: Request) -> SessionKeys:
    keys: SessionKeys = request.app.state.session_keys
    return keys


def console_actor(request: Request, db: SessionDep, ctx: ContextDep) -> ConsoleActor:
    session = _keys(request).read(request.cookies.get(COOKIE), ctx.clock())
    if session is None:
        raise NeedsSignIn(request.url.path)
    user = db.get(StaffUser, session.user_id)
    if user is None or user.disabled_at is not None:
        raise NeedsSignIn(request.url.path)
    actor = Actor(user, Role[user.role], client_ip(request), ctx)
    return ConsoleActor(actor, session, _keys(request).csrf_token(session.sid))


def require(role: Role) -> Any:
    def check(who: Annotated[ConsoleActor, Depends(console_actor)]) -> ConsoleActor:
        if who.role < role:
            raise ConsoleForbidden(
                f"This page is for {role.name} accounts. You are signed in as a {who.role.name}."
            )
        return who

    return check


Nurse = Annotated[ConsoleActor, Depends(require(Role.nurse))]
StaffMember = Annotated[ConsoleActor, Depends(require(Role.staff))]
Admin = Annotated[ConsoleActor, Depends(require(Role.admin))]


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token matches the signed-in session."""
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    ctx = request.app.state.context
    session = _keys(request).read(request.cookies.get(COOKIE), ctx.clock())
    if session is None:
        raise NeedsSignIn(request.url.path)
    if not _keys(request).csrf_ok(session.sid, data.get("csrf_token")):
        raise BadForm
    return data


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]


# ---------------------------------------------------------------- rendering


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(IDLE_TIMEOUT.total_seconds()),
        path="/console",
        httponly=True,
        secure=request.app.state.context.settings.public_base_url.startswith("https://"),
        samesite="lax",
    )


def _refreshed(request: Request, who: ConsoleActor, response: Response) -> Response:
    # the session slides: each page seen restarts the idle clock
    token, _ = _keys(request).issue(who.session.user_id, who.actor.ctx.clock(), who.session.sid)
    _set_session_cookie(request, response, token)
    return response


def page(
    request: Request, who: ConsoleActor, template: str, status_code: int = 200, **context: Any
) -> Response:
    response = TEMPLATES.TemplateResponse(
        request, template, {"who": who, "Role": Role, "csrf": who.csrf, **context}, status_code=status_code
    )
    return _refreshed(request, who, response)


def go(request: Request, who: ConsoleActor, url: str) -> Response:
    return _refreshed(request, who, RedirectResponse(url, status_code=303))


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, "error.html", {"who": None, "title": title, "message": message}, status_code=status_code
    )


def install(app: FastAPI) -> None:
    """Error pages for the console: sign-in redirects, forbidden and stale forms."""

    @app.exception_handler(NeedsSignIn)
    async def needs_sign_in(request: Request, exc: NeedsSignIn) -> Response:
        target = "/console/login"
        if exc.next_path not in ("/console/", "/console/login"):
            target += "?next=" + quote(exc.next_path)
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @app.exception_handler(ConsoleForbidden)
    async def forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        return error_page(request, 403, "Not for your role", exc.message)

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, exc: BadForm) -> Response:
        return error_page(
            request,
            403,
            "This form has expired",
            "For your safety the form was not accepted. Go back, reload the page and try again.",
        )


# ---------------------------------------------------------------- sign in and out


def _safe_next(next_path: str | None) -> str:
    if next_path and next_path.startswith("/console/") and not next_path.startswith("//"):
        return next_path
    return "/console/"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    import secrets

    nonce = secrets.token_urlsafe(18)
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {
            "who": None,
            "csrf": _keys(request).csrf_token("login:" + nonce),
            "next": _safe_next(next),
            "errors": {},
        },
    )
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=1800, path="/console", httponly=True, samesite="strict")
    return response


@router.post("/login")
async def login(request: Request, db: SessionDep, ctx: ContextDep) -> Response:
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))
    next_path = _safe_next(str(form.get("next", "")))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not _keys(request).csrf_ok("login:" + nonce, str(form.get("csrf_token", ""))):
        return error_page(request, 403, "This form has expired", "Reload the sign-in page and try again.")
    now, ip = ctx.clock(), client_ip(request)
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    user = None
    status = 200
    if not errors:
        try:
            user = staff.authenticate(db, email=email, password=password, client_ip=ip, now=now)
        except (BadCredentials, Locked) as exc:
            audit.record(
                db, actor=email, action="auth.sign_in_failed", target=str(exc)[:200], client_ip=ip, at=now
            )
            db.commit()
            errors["password"] = (
                "The email or password is not right."
                if isinstance(exc, BadCredentials)
                else str(exc).capitalize() + "."
            )
            status = exc.status_code
    if user is None:
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "who": None,
                "csrf": _keys(request).csrf_token("login:" + nonce),
                "next": next_path,
                "errors": errors,
                "email": email,
            },
            status_code=status if status != 200 else 400,
        )
    audit.record(db, actor=user.email, action="auth.sign_in", target="console", client_ip=ip, at=now)
    db.commit()
    token, _ = _keys(request).issue(user.id, now)
    response = RedirectResponse(next_path, status_code=303)
    _set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, who: Nurse, form: CheckedForm, db: SessionDep) -> Response:
    who.audit(db, "auth.sign_out", "console")
    db.commit()
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


# ---------------------------------------------------------------- today


@router.get("/")
def today(request: Request, who: Nurse, db: SessionDep) -> Response:
    ctx = who.actor.ctx
    now = ctx.clock()
    figures = stats.programme_stats(db, now, ctx.policy.contact_period)
    flags = queries.attention(db, open_only=True, pair_id=None, after=None, limit=10)
    new_messages = queries.messages(db, handled=False, participant_id=None, after=None, limit=10)
    names = _names_for_pairs(db, [f.pair_id for f in flags])
    people = _people(db, [m.participant_id for m in new_messages if m.participant_id])
    pairs = {p.id: p for p in db.scalars(select(Pair).where(Pair.id.in_([f.pair_id for f in flags])))}
    who.audit(db, "console.today.read")
    db.commit()
    return page(
        request,
        who,
        "today.html",
        figures=figures,
        flags=flags,
        names=names,
        pairs=pairs,
        messages=new_messages,
        people=people,
        now=now,
    )


# ---------------------------------------------------------------- pairs


def _people(db: Session, ids: list[int]) -> dict[int, Participant]:
    if not ids:
        return {}
    return {p.id: p for p in db.scalars(select(Participant).where(Participant.id.in_(set(ids))))}


def _names_for_pairs(db: Session, pair_ids: list[int]) -> dict[int, str]:
    pairs = list(db.scalars(select(Pair).where(Pair.id.in_(set(pair_ids))))) if pair_ids else []
    people = _people(db, [i for p in pairs for i in (p.participant_a_id, p.participant_b_id)])

    def name(i: int) -> str:
        return people[i].name if i in people else f"#{i}"

    return {p.id: f"{name(p.participant_a_id)} & {name(p.participant_b_id)}" for p in pairs}


@dataclass(frozen=True)
class PairRow:
    pair: Pair
    a: Participant | None
    b: Participant | None
    contacts: int
    minutes: float
    strip: list[int]


def _pair_rows(db: Session, pairs: list[Pair], now: datetime, period: timedelta) -> list[PairRow]:
    ids = [p.id for p in pairs]
    people = _people(db, [i for p in pairs for i in (p.participant_a_id, p.participant_b_id)])
    this_period: dict[int, tuple[int, int]] = {}
    strips: dict[int, list[int]] = {i: [0] * 12 for i in ids}
    if ids:
        for pid, n, secs in db.execute(
            select(Call.pair_id, func.count(Call.id), func.coalesce(func.sum(Call.duration_seconds), 0))
            .where(Call.pair_id.in_(ids), Call.outcome == "contact", Call.accepted_at >= now - period)
            .group_by(Call.pair_id)
        ).all():
            if pid is not None:
                this_period[pid] = (n, secs or 0)
        first = now - 12 * stats.WEEK
        week = stats.week_index(db, Call.accepted_at, first).label("week")
        for pid, w, n in db.execute(
            select(Call.pair_id, week, func.count(Call.id))
            .where(Call.pair_id.in_(ids), Call.outcome == "contact", Call.accepted_at >= first)
            .group_by(Call.pair_id, week)
        ).all():
            if pid is not None and w is not None and 0 <= int(w) <= 12:
                strips[pid][min(int(w), 11)] += n  # the last week ends now, and includes now
    return [
        PairRow(
            p,
            people.get(p.participant_a_id),
            people.get(p.participant_b_id),
            this_period.get(p.id, (0, 0))[0],
            round(this_period.get(p.id, (0, 0))[1] / 60, 1),
            strips[p.id],
        )
        for p in pairs
    ]


@router.get("/pairs")
def pairs_page(
    request: Request,
    who: Nurse,
    db: SessionDep,
    q: Annotated[str, Query(max_length=120)] = "",
    show: Annotated[str, Query(pattern="^(active|ended|all)$")] = "active",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    ctx = who.actor.ctx
    stmt = select(Pair)
    if show == "active":
        stmt = stmt.where(Pair.ended_at.is_(None))
    elif show == "ended":
        stmt = stmt.where(Pair.ended_at.is_not(None))
    if q.strip():
        matching = select(Participant.id).where(Participant.name.ilike(f"%{q.strip()}%"))
        stmt = stmt.where(or_(Pair.participant_a_id.in_(matching), Pair.participant_b_id.in_(matching)))
    found = queries.keyset(db, stmt, [Pair.id], after(cursor), PAGE)
    rows = _pair_rows(db, found.rows, ctx.clock(), ctx.policy.contact_period)
    who.audit(db, "console.pairs.read", f"{len(rows)} pairs")
    db.commit()
    next_cursor = cursor_after(found.next_key)
    return page(
        request, who, "pairs.html", rows=rows, q=q, show=show, next_cursor=next_cursor, now=ctx.clock()
    )


@router.get("/pairs/new")
def new_pair_form(
    request: Request,
    who: StaffMember,
    db: SessionDep,
    with_: Annotated[int | None, Query(alias="with")] = None,
) -> Response:
    free = list(
        db.scalars(
            select(Participant)
            .where(Participant.status == "active", Participant.active_pair_id.is_(None))
            .order_by(Participant.name)
        )
    )
    return page(request, who, "pair_new.html", free=free, first=with_, errors={})


@router.post("/pairs")
def create_pair(request: Request, who: StaffMember, form: CheckedForm, db: SessionDep) -> Response:
    try:
        a, b = int(form.get("first", "0")), int(form.get("second", "0"))
        pair = participants.make_pair(db, a, b, now=who.actor.ctx.clock())
    except (ValueError, ServiceError) as exc:
        db.rollback()
        free = list(
            db.scalars(
                select(Participant)
                .where(Participant.status == "active", Participant.active_pair_id.is_(None))
                .order_by(Participant.name)
            )
        )
        message = str(exc) if isinstance(exc, ServiceError) else "Choose two participants."
        return page(
            request, who, "pair_new.html", status_code=400, free=free, first=None, errors={"second": message}
        )
    who.audit(db, "pair.create", f"pair:{pair.id}")
    db.commit()
    return go(request, who, f"/console/pairs/{pair.id}")


@router.get("/pairs/{pair_id}")
def pair_page(request: Request, who: Nurse, db: SessionDep, pair_id: int) -> Response:
    ctx = who.actor.ctx
    pair = db.get(Pair, pair_id)
    if pair is None:
        return error_page(request, 404, "No such pair", f"There is no pair {pair_id}.")
    people = _people(db, [pair.participant_a_id, pair.participant_b_id])
    calls = queries.calls(db, pair_id=pair.id, limit=100)
    figures = stats.pair_stats(db, pair, ctx.clock())
    flags = queries.attention(db, open_only=False, pair_id=pair.id, after=None, limit=20)
    pending_reminders = list(
        db.scalars(select(Reminder).where(Reminder.pair_id == pair.id).order_by(Reminder.id.desc()).limit(20))
    )
    (row,) = _pair_rows(db, [pair], ctx.clock(), ctx.policy.contact_period)
    who.audit(db, "console.pair.read", f"pair:{pair.id}")
    db.commit()
    return page(
        request,
        who,
        "pair.html",
        pair=pair,
        people=people,
        calls=calls,
        figures=figures,
        flags=flags,
        reminders=pending_reminders,
        row=row,
        now=ctx.clock(),
    )


@router.post("/pairs/{pair_id}/notes")
def pair_notes(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, pair_id: int
) -> Response:
    pair = participants.get_pair(db, pair_id)
    pair.notes = form.get("notes", "")[:5000]
    who.audit(db, "pair.notes", f"pair:{pair.id}")
    db.commit()
    return go(request, who, f"/console/pairs/{pair.id}#notes")


@router.post("/pairs/{pair_id}/end")
def pair_end(request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, pair_id: int) -> Response:
    pair = participants.end_pair(db, participants.get_pair(db, pair_id), now=who.actor.ctx.clock())
    who.audit(db, "pair.end", f"pair:{pair.id}")
    db.commit()
    return go(request, who, f"/console/pairs/{pair.id}")


# ---------------------------------------------------------------- participants (staff)


def _zones() -> list[str]:
    rest = sorted(
        z for z in known_zones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
    )
    return [*COMMON_ZONES, "UTC", *[z for z in rest if z not in COMMON_ZONES]]


@router.get("/participants")
def participants_page(
    request: Request,
    who: StaffMember,
    db: SessionDep,
    q: Annotated[str, Query(max_length=120)] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    found = queries.participants(
        db,
        status=None,
        search=q.strip() or None,
        after=after(cursor),
        limit=PAGE,
    )
    vault, full = who.actor.ctx.vault, who.actor.sees_full_numbers
    phones = {p.id: convert.participant(p, vault, full_number=full).phone for p in found}
    who.audit(db, "console.participants.read", f"{len(found)} participants")
    db.commit()
    next_cursor = cursor_after(found.next_key)
    return page(
        request, who, "participants.html", people=found.rows, phones=phones, q=q, next_cursor=next_cursor
    )


@router.get("/participants/new")
def new_participant_form(request: Request, who: StaffMember) -> Response:
    return page(
        request,
        who,
        "participant_form.html",
        person=None,
        values={"timezone": COMMON_ZONES[0]},
        errors={},
        zones=_zones(),
    )


def _field_errors(*problems: ServiceError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for exc in reversed(problems):
        errors.update(_field_error(exc))
    return errors


def _field_error(exc: ServiceError) -> dict[str, str]:
    field, _, message = str(exc).partition(": ")
    if not message:
        return {"form": str(exc)}
    plain = {
        "phone": f"This phone number does not look right ({message}). "
        "Type it with the area code, e.g. (617) 555-0101.",
        "timezone": "Choose a time zone from the list.",
        "quiet_hours": "Write quiet hours like 21:00-09:00 (from - to, 24-hour clock), or leave empty.",
        "name": "Enter a name or alias.",
    }
    return {
        field: plain.get(field, message)
        if "already enrolled" not in message
        else "This number is already enrolled."
    }


@router.post("/participants")
def create_participant(request: Request, who: StaffMember, form: CheckedForm, db: SessionDep) -> Response:
    ctx = who.actor.ctx
    problems = participants.enrolment_problems(
        name=form.get("name", ""),
        phone=form.get("phone", ""),
        timezone=form.get("timezone", ""),
        quiet_hours=form.get("quiet_hours") or None,
        region=ctx.settings.default_region,
    )
    if problems:
        return page(
            request,
            who,
            "participant_form.html",
            status_code=400,
            person=None,
            values=form,
            errors=_field_errors(*problems),
            zones=_zones(),
        )
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
        return page(
            request,
            who,
            "participant_form.html",
            status_code=400,
            person=None,
            values=form,
            errors=_field_errors(exc),
            zones=_zones(),
        )
    who.audit(db, "participant.create", f"participant:{person.id}")
    db.commit()
    return go(request, who, f"/console/participants/{person.id}?created=1")


@router.get("/participants/{participant_id}")
def participant_page(
    request: Request, who: StaffMember, db: SessionDep, participant_id: int, created: int = 0
) -> Response:
    person = db.get(Participant, participant_id)
    if person is None:
        return error_page(request, 404, "No such participant", f"There is no participant {participant_id}.")
    vault = who.actor.ctx.vault
    phone = vault.decrypt(person.phone_ciphertext) if person.phone_ciphertext else None
    values = {
        "name": person.name,
        "timezone": person.timezone,
        "quiet_hours": person.quiet_hours or "",
        "language": person.language,
    }
    history = list(
        db.scalars(
            select(Pair)
            .where(or_(Pair.participant_a_id == person.id, Pair.participant_b_id == person.id))
            .order_by(Pair.id.desc())
        )
    )
    who.audit(db, "participant.read", f"participant:{person.id}")
    db.commit()
    return page(
        request,
        who,
        "participant_form.html",
        person=person,
        phone=phone,
        values=values,
        errors={},
        zones=_zones(),
        created=bool(created),
        history=history,
        names=_names_for_pairs(db, [p.id for p in history]),
    )


@router.post("/participants/{participant_id}")
def edit_participant(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, participant_id: int
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
        db.rollback()
        phone = who.actor.ctx.vault.decrypt(person.phone_ciphertext) if person.phone_ciphertext else None
        return page(
            request,
            who,
            "participant_form.html",
            status_code=400,
            person=person,
            phone=phone,
            values=form,
            errors=_field_errors(exc),
            zones=_zones(),
            history=[],
            names={},
        )
    who.audit(db, "participant.update", f"participant:{person.id}")
    db.commit()
    return go(request, who, f"/console/participants/{person.id}")


@router.get("/participants/{participant_id}/remove")
def remove_confirmation(request: Request, who: StaffMember, db: SessionDep, participant_id: int) -> Response:
    person = participants.get(db, participant_id)
    return page(request, who, "participant_remove.html", person=person)


@router.post("/participants/{participant_id}/remove")
def remove_participant(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, participant_id: int
) -> Response:
    person = participants.remove(db, participants.get(db, participant_id), now=who.actor.ctx.clock())
    who.audit(db, "participant.delete", f"participant:{person.id}")
    db.commit()
    return go(request, who, f"/console/participants/{person.id}")


# ---------------------------------------------------------------- care-team messages


@router.get("/messages")
def messages_page(
    request: Request,
    who: Nurse,
    db: SessionDep,
    show: Annotated[str, Query(pattern="^(new|handled|all)$")] = "new",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    handled = {"new": False, "handled": True, "all": None}[show]
    found = queries.messages(
        db,
        handled=handled,
        participant_id=None,
        after=after(cursor),
        limit=PAGE,
    )
    people = _people(db, [m.participant_id for m in found if m.participant_id])
    who.audit(db, "messages.read", f"{len(found)} messages")
    db.commit()
    next_cursor = cursor_after(found.next_key)
    return page(
        request, who, "messages.html", messages=found.rows, people=people, show=show, next_cursor=next_cursor
    )


@router.post("/messages/{message_id}/handle")
def handle_message(
    request: Request, who: Nurse, form: CheckedForm, db: SessionDep, message_id: int
) -> Response:
    message = db.get(CareTeamMessage, message_id)
    if message is not None and care.mark_handled(message, by=who.actor.email, now=who.actor.ctx.clock()):
        who.audit(db, "message.handle", f"message:{message.id}")
        db.commit()
    return go(request, who, "/console/messages")


@router.get("/messages/{message_id}/recording")
def message_recording(request: Request, who: Nurse, db: SessionDep, message_id: int) -> Response:
    from app.api.routes import fetch_recording

    message = db.get(CareTeamMessage, message_id)
    if message is None:
        return error_page(request, 404, "No such message", f"There is no message {message_id}.")
    who.audit(db, "message.listen", f"message:{message.id}")
    db.commit()
    return fetch_recording(who.actor.ctx.settings, message.recording_sid)


# ---------------------------------------------------------------- attention


@router.get("/attention")
def attention_page(request: Request, who: Nurse, db: SessionDep) -> Response:
    flags = queries.attention(db, open_only=True, pair_id=None, after=None, limit=200)
    names = _names_for_pairs(db, [f.pair_id for f in flags])
    pairs = {p.id: p for p in db.scalars(select(Pair).where(Pair.id.in_([f.pair_id for f in flags])))}
    who.audit(db, "console.attention.read", f"{len(flags)} pairs")
    db.commit()
    return page(request, who, "attention.html", flags=flags, names=names, pairs=pairs)


@router.post("/attention/{flag_id}/clear")
def clear_attention(
    request: Request, who: StaffMember, form: CheckedForm, db: SessionDep, flag_id: int
) -> Response:
    flag = db.get(AttentionFlag, flag_id)
    note = form.get("note", "")
    if flag is not None and care.clear_attention(
        flag, by=who.actor.email, note=note, now=who.actor.ctx.clock()
    ):
        who.audit(db, "attention.clear", f"pair:{flag.pair_id}")
        db.commit()
    return go(request, who, "/console/attention")


# ---------------------------------------------------------------- staff accounts and audit (admin)


@router.get("/staff")
def staff_page(request: Request, who: Admin, db: SessionDep) -> Response:
    users = list(db.scalars(select(StaffUser).order_by(StaffUser.email)))
    return page(request, who, "staff.html", users=users, errors={}, values={})


@router.post("/staff")
def create_staff(request: Request, who: Admin, form: CheckedForm, db: SessionDep) -> Response:
    try:
        user = staff.create_user(
            db,
            email=form.get("email", ""),
            password=form.get("password", ""),
            role=form.get("role", ""),
            now=who.actor.ctx.clock(),
        )
    except ServiceError as exc:
        db.rollback()
        field, _, message = str(exc).partition(": ")
        users = list(db.scalars(select(StaffUser).order_by(StaffUser.email)))
        return page(
            request,
            who,
            "staff.html",
            status_code=400,
            users=users,
            errors={field: message.capitalize() + "."},
            values={"email": form.get("email", ""), "role": form.get("role", "")},
        )
    who.audit(db, "user.create", f"staff_user:{user.id}")
    db.commit()
    return go(request, who, "/console/staff")


@router.post("/staff/{user_id}")
def edit_staff(request: Request, who: Admin, form: CheckedForm, db: SessionDep, user_id: int) -> Response:
    user = staff.get_user(db, user_id)
    if user.id == who.actor.user.id:
        raise ConsoleForbidden("You cannot change or disable your own account here.")
    if form.get("action") == "disable":
        user.disabled_at = who.actor.ctx.clock()
    elif form.get("action") == "enable":
        user.disabled_at = None
    elif form.get("role") in ("nurse", "staff", "admin"):
        user.role = form["role"]
    who.audit(db, "user.update", f"staff_user:{user.id}")
    db.commit()
    return go(request, who, "/console/staff")


@router.get("/audit")
def audit_page(
    request: Request,
    who: Admin,
    db: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    actor: Annotated[str, Query(max_length=254)] = "",
) -> Response:
    found = queries.audit_events(
        db,
        actor=actor.strip().lower() or None,
        action=None,
        after=after(cursor),
        limit=50,
    )
    who.audit(db, "audit.read")
    db.commit()
    next_cursor = cursor_after(found.next_key)
    return page(request, who, "audit.html", events=found.rows, next_cursor=next_cursor, actor=actor)


@router.get("")
def console_root() -> Response:
    return RedirectResponse("/console/", status_code=307)
