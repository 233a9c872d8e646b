"""/twilio/outreach/*: the webhooks of a care-team call, and the REST requests that ring its legs.

Signed like every webhook (app/twilio/signature.py) and run on the phone line's own threads
under its deadline through webhooks._in_transaction, so a slow database never makes a nurse or
a participant hear Twilio's own error. Every voice step answers 200 with TwiML, every status
callback an empty <Response/>. The URLs carry only the opaque room name.

Ringing a leg is a REST request that can take seconds: the staff member's leg is placed by the
API or console request that asked for the call (after it committed the row), the participant's
leg on a small pool of threads of its own after the webhook that asked for it has answered.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

import ivr.flow as flow
from app.context import Context
from app.deadline import Abandoned, Guard
from app.models import Call, Participant, StaffUser
from app.services import outreach
from app.twilio import forms, rest
from app.twilio.dialer import Dialer, dialer_for
from app.twilio.signature import TwilioForm
from app.twilio.webhooks import AfterCommit, _in_transaction, _quietly, _safe_rollback
from ivr import outreach as steps
from ivr.vocab import CallStatus

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/outreach", tags=["twilio"], include_in_schema=False)

RING_SECONDS = 30  # how long each phone rings before Twilio gives up


def _xml(decision: steps.Decision | flow.Step) -> Response:
    return Response(str(decision), media_type="application/xml")


def _urls(ctx: Context) -> steps.OutreachUrls:
    return steps.OutreachUrls(ctx.settings.public_base_url)


def _ring(
    client: rest.CallPlacer | None, ctx: Context, phone: str, room: str, leg: Literal["staff", "participant"]
) -> rest.PlaceResult:
    """Place one leg of an outreach call from the programme's number, into its room."""
    if client is None:
        return rest.Unreachable("no Twilio account configured; point TWILIO_API_URL at a fake")
    urls = _urls(ctx)
    return rest.place_call(
        client,
        to=phone,
        from_=ctx.settings.programme_number,
        url=urls.staff(room) if leg == "staff" else urls.participant(room),
        status_callback=urls.status(leg, room),
        timeout=RING_SECONDS,
    )


def _now(ctx: Context) -> datetime:
    return ctx.clock().astimezone(UTC)


# ---------------------------------------------------------------- ringing the legs


def place_staff_leg(app: FastAPI, call_id: int) -> rest.PlaceResult:
    """Ring the staff member's own phone from the programme's number; record what came of it.

    Called once the request that made the call row has committed, so the answer webhook always
    finds its room."""
    ctx: Context = app.state.context
    with app.state.sessionmaker() as db:
        call = db.get(Call, call_id)
        user = db.scalar(_staff(call)) if call is not None else None
        phone = outreach.staff_phone(user, ctx.vault) if user is not None else None
        room = call.room if call is not None else None
    if phone is None or room is None:
        result: rest.PlaceResult = rest.Rejected("the staff member has no phone on their account")
    else:
        result = _ring(dialer_for(app).client, ctx, phone, room, "staff")
    with app.state.sessionmaker() as db:
        call = db.get(Call, call_id, with_for_update=True)
        if call is not None:
            if isinstance(result, rest.Placed):
                call.twilio_call_sid = result.sid
                call.status = CallStatus.INITIATED if call.status == CallStatus.QUEUED else call.status
            else:
                log.warning("the staff leg of outreach call %s was not placed: %s", call_id, result)
                outreach.not_placed(call, now=_now(ctx))
            db.commit()
    return result


def _staff(call: Call | None) -> Select[StaffUser]:
    return select(StaffUser).where(StaffUser.email == (call.staff_initiator if call else None))


class Ringer:
    """The participant's leg, placed off the webhook's thread once its answer has gone back."""

    def __init__(self, app: FastAPI, dialer: Dialer) -> None:
        self.app, self.dialer = app, dialer
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outreach")

    def ring(self, call_id: int) -> None:
        self.pool.submit(self._ring, call_id)

    def _ring(self, call_id: int) -> None:
        try:
            self._place(call_id)
        except Exception:
            log.exception("the participant's leg of an outreach call could not be placed")

    def _place(self, call_id: int) -> None:
        ctx: Context = self.app.state.context
        sessions = self.app.state.phone_sessionmaker
        with sessions() as db:
            call = db.get(Call, call_id, with_for_update=True)
            if call is None or call.partner_call_sid is not None or call.partner_status is not None:
                return  # rung already (a repeated key press)
            person = db.get(Participant, call.callee_id) if call.callee_id else None
            phone = ctx.vault.decrypt(person.phone_ciphertext) if person and person.phone_ciphertext else None
            room = call.room or ""
            call.partner_status = CallStatus.QUEUED
            db.commit()
        client = self.dialer.client
        if phone is None:
            result: rest.PlaceResult = rest.Rejected("the participant's number was removed")
        else:
            result = _ring(client, ctx, phone, room, "participant")
        with sessions() as db:
            call = db.get(Call, call_id, with_for_update=True)
            if call is None:
                return
            if isinstance(result, rest.Placed):
                call.partner_call_sid = call.partner_call_sid or result.sid
            else:
                log.warning("the participant's leg of outreach call %s was not placed: %s", call_id, result)
                outreach.participant_leg_status(call, CallStatus.FAILED, None, now=_now(ctx))
                staff_sid = call.twilio_call_sid
                db.commit()
                # the staff member waits alone in the room: end their leg, they hear it hang up
                if client is not None:
                    rest.end_call(client, staff_sid)
                return
            db.commit()


_made = threading.Lock()


def ringer_for(app: FastAPI) -> Ringer:
    with _made:
        ringer: Ringer | None = getattr(app.state, "outreach_ringer", None)
        if ringer is None:
            ringer = Ringer(app, dialer_for(app))
            app.state.outreach_ringer = ringer
        return ringer


# ---------------------------------------------------------------- webhooks


def _voice(
    db: Session,
    guard: Guard,
    decide: Callable[[Session], tuple[steps.Decision, int | None]],
    ringer: Ringer,
    after: AfterCommit,
) -> Response:
    try:
        decision, ring_call = decide(db)
        guard.begin_commit()
        db.commit()
        if decision.ring_participant and ring_call is not None:
            # once stored: in a batch the commit above only flushes into the batch's
            # transaction, which may still be given up
            after.then(functools.partial(ringer.ring, ring_call))
        return _xml(decision)
    except Abandoned:
        _safe_rollback(db)
        raise
    except Exception as exc:
        if guard.runs_again(exc):
            raise  # not its own to answer (app/deadline.py)
        _safe_rollback(db)
        log.exception("outreach webhook failed; the leg hears goodbye")
        return _xml(steps.participant_answered("", known=False))


@router.api_route("/staff", methods=["POST", "GET"])
async def staff_answered(form: TwilioForm, request: Request) -> Response:
    room = request.query_params.get("room")
    ringer = ringer_for(request.app)

    def decide(db: Session) -> tuple[steps.Decision, int | None]:
        call = outreach.by_room(db, room)
        person = db.get(Participant, call.callee_id) if call is not None and call.callee_id else None
        name = steps.first_name(person.name) if person is not None else None
        return steps.staff_answered(name, _urls(request.app.state.context), room or ""), None

    return await _in_transaction(request, lambda db, ctx, g, d: _voice(db, g, decide, ringer, d))


@router.api_route("/staff-answer", methods=["POST", "GET"])
async def staff_pressed(form: TwilioForm, request: Request) -> Response:
    room = request.query_params.get("room")
    digits = forms.voice_request(form, request.query_params).digits
    ringer = ringer_for(request.app)

    def decide(db: Session) -> tuple[steps.Decision, int | None]:
        call = outreach.by_room(db, room)
        decision = steps.staff_pressed(digits, room or "", known=call is not None)
        if call is not None and decision.ring_participant:
            call.accepted_at = call.accepted_at or _now(request.app.state.context)
        return decision, call.id if call is not None else None

    return await _in_transaction(request, lambda db, ctx, g, d: _voice(db, g, decide, ringer, d))


@router.api_route("/participant", methods=["POST", "GET"])
async def participant_answered(form: TwilioForm, request: Request) -> Response:
    room = request.query_params.get("room")
    ringer = ringer_for(request.app)

    def decide(db: Session) -> tuple[steps.Decision, int | None]:
        call = outreach.by_room(db, room)
        return steps.participant_answered(room or "", known=call is not None), None

    return await _in_transaction(request, lambda db, ctx, g, d: _voice(db, g, decide, ringer, d))


@router.api_route("/status/{leg}", methods=["POST", "GET"])
async def leg_status(leg: str, form: TwilioForm, request: Request) -> Response:
    callback = forms.status_callback(form, request.query_params)

    def work(db: Session, ctx: Context) -> None:
        call = outreach.by_room(db, callback.room or request.query_params.get("room"))
        status = callback.call_status
        if call is None or status is None:
            return
        if leg == "staff":
            outreach.staff_leg_status(call, status, now=_now(ctx))
        elif leg == "participant":
            outreach.participant_leg_status(call, status, callback.call_duration, now=_now(ctx))

    def run(db: Session, ctx: Context, g: Guard, d: Dialer) -> Response:
        return _quietly(db, lambda: work(db, ctx), g, d)

    return await _in_transaction(request, run, quiet=True)
