"""Twilio webhooks: verify, load facts, let `ivr` decide, record, commit, answer TwiML.

A live call must never hear "an application error has occurred": any failure after
the signature check is answered with a spoken apology and the care-team number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from twilio.twiml.voice_response import VoiceResponse

import ivr.flow as flow
from app.context import Context, get_context
from app.models import Call, Participant
from app.services import calls
from app.services.participants import find_by_phone
from app.services.policy import Policy
from app.twilio_signature import TwilioForm
from ivr.phone import try_normalise

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"], include_in_schema=False)

Handler = Callable[[Session, Context, flow.Line, dict[str, str]], flow.Step | VoiceResponse]


def twiml(response: flow.Step | VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _answer(db: Session, ctx: Context, form: dict[str, str], handler: Handler) -> Response:
    """One transaction: load facts, decide, record, commit; then the TwiML goes back."""
    try:
        line = flow.Line(flow.Urls(ctx.settings.public_base_url), ctx.settings.programme_number, ctx.clock())
        result = handler(db, ctx, line, form)
        db.commit()
        return twiml(result)
    except Exception:
        log.exception("webhook failed; the caller hears the apology")
        _safe_rollback(db)
        return twiml(flow.apology(ctx.settings.support_phone_number))


def _quietly(db: Session, work: Callable[[], None]) -> Response:
    """Status and recording callbacks: always an empty <Response/>, whatever happens."""
    try:
        work()
        db.commit()
    except Exception:
        log.exception("callback could not be recorded")
        _safe_rollback(db)
    return twiml(flow.empty())


def _safe_rollback(db: Session) -> None:
    try:
        db.rollback()
    except Exception:
        log.exception("rollback failed")


def _digits(form: dict[str, str]) -> str:
    return re.sub(r"[^0-9*#]", "", form.get("Digits", ""))[:32]


def _call(db: Session, form: dict[str, str], line: flow.Line) -> Call | None:
    sid = form.get("CallSid", "").strip()
    return calls.open_call(db, sid, now=line.now) if sid else None


def _policy(ctx: Context) -> Policy:
    return ctx.policy


# ---------------------------------------------------------------- steps


def inbound(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    call = _call(db, form, line)
    if call is None:
        return flow.lost(line)
    raw_from = form.get("From", "")
    e164 = try_normalise(raw_from, ctx.settings.default_region)
    call.caller_index = call.caller_index or ctx.vault.blind_index(
        e164 or "withheld:" + raw_from.strip().lower()
    )
    person = find_by_phone(db, ctx.vault, e164) if e164 else None
    caller = None
    if person is not None and person.status == "active":
        caller = calls.caller_facts(db, ctx.vault, person, exclude_call_id=call.id)
    # the lockout matters only to a caller we must ask for a number
    locked = caller is None and calls.is_locked_out(db, call.caller_index, line.now)
    step = flow.inbound(caller, line, locked_out=locked)
    calls.record(db, call, step.effects, now=line.now, policy=_policy(ctx))
    return step


def identify(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    call = _call(db, form, line)
    if call is None:
        return flow.lost(line)
    e164 = try_normalise(_digits(form).strip("#*"), ctx.settings.default_region)
    person = find_by_phone(db, ctx.vault, e164) if e164 else None
    caller = None
    if person is not None and person.status == "active":
        caller = calls.caller_facts(db, ctx.vault, person, exclude_call_id=call.id)
    locked = caller is None and calls.is_locked_out(db, call.caller_index or "", line.now)
    step = flow.identify(caller, line, tries_before=call.id_tries, locked_out=locked)
    calls.record(db, call, step.effects, now=line.now, policy=_policy(ctx))
    return step


def _parent_call(db: Session, form: dict[str, str], line: flow.Line) -> Call | None:
    parent_sid = form.get("ParentCallSid", "").strip()
    if not parent_sid:
        return None
    call = calls.open_call(db, parent_sid, now=line.now)
    child_sid = form.get("CallSid", "").strip()
    if child_sid and call.partner_call_sid is None:
        call.partner_call_sid = child_sid
    return call


def whisper(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    if _parent_call(db, form, line) is None:
        return flow.whisper_answer("", line)  # no call to join: a polite goodbye
    return flow.whisper(line)


def whisper_answer(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    call = _parent_call(db, form, line)
    if call is None:
        return flow.whisper_answer("", line)
    step = flow.whisper_answer(_digits(form), line)
    calls.record(db, call, step.effects, now=line.now, policy=_policy(ctx))
    return step


def dial_done(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    call = _call(db, form, line)
    if call is None:
        return flow.lost(line)
    status = form.get("DialCallStatus", "").strip().lower() or "failed"
    seconds = calls.to_int(form.get("DialCallDuration"))
    step = flow.dial_done(status, seconds, call.accepted_at is not None, line)
    calls.record(db, call, step.effects, now=line.now, policy=_policy(ctx))
    return step


def message(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    return flow.message_menu(_digits(form), line)


def message_done(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    calls.record_message(db, form, now=line.now)
    return flow.message_done()


def _called_person(db: Session, ctx: Context, form: dict[str, str], call: Call) -> Participant | None:
    """Who we rang for a reminder: by the number called, so it works before the SID is stored."""
    if call.initiator_id is not None:
        return db.get(Participant, call.initiator_id)
    e164 = try_normalise(form.get("To", ""), ctx.settings.default_region)
    return find_by_phone(db, ctx.vault, e164) if e164 else None


def reminder(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    call = _call(db, form, line)
    if call is None:
        return flow.lost(line)
    call.kind = "reminder"
    person = _called_person(db, ctx, form, call)
    facts = None
    if person is not None and person.status == "active":
        call.initiator_id = call.initiator_id or person.id
        call.pair_id = call.pair_id or person.active_pair_id
        facts = flow.Person(person.id, person.name, person.timezone)
    step = flow.reminder(facts, form.get("AnsweredBy", "human").strip().lower(), line)
    calls.record(db, call, step.effects, now=line.now, policy=_policy(ctx))
    return step


def reminder_answer(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    call = _call(db, form, line)
    if call is None:
        return flow.lost(line)
    person = _called_person(db, ctx, form, call)
    caller = None
    if person is not None and person.status == "active":
        caller = calls.caller_facts(db, ctx.vault, person, exclude_call_id=call.id)
    step = flow.reminder_answer(_digits(form), caller, line)
    calls.record(db, call, step.effects, now=line.now, policy=_policy(ctx))
    return step


def lost(db: Session, ctx: Context, line: flow.Line, form: dict[str, str]) -> flow.Step:
    return flow.lost(line)


STEPS: dict[str, Handler] = {
    "identify": identify,
    "whisper": whisper,
    "whisper-answer": whisper_answer,
    "dial-done": dial_done,
    "message": message,
    "message-done": message_done,
    "reminder": reminder,
    "reminder-answer": reminder_answer,
}


# ---------------------------------------------------------------- routes
#
# The routes are async and hand the whole request to one worker thread: a sync route
# with a sync session dependency costs a thread hop each, and Twilio is waiting.


async def _in_transaction(
    request: Request, form: dict[str, str], work: Callable[[Session, Context], Response]
) -> Response:
    ctx = get_context(request)

    def run() -> Response:
        with request.app.state.sessionmaker() as db:
            return work(db, ctx)

    return await run_in_threadpool(run)


@router.api_route("/voice", methods=["POST", "GET"])
async def voice(form: TwilioForm, request: Request) -> Response:
    return await _in_transaction(request, form, lambda db, ctx: _answer(db, ctx, form, inbound))


@router.api_route("/voice/{step}", methods=["POST", "GET"])
async def voice_step(step: str, form: TwilioForm, request: Request) -> Response:
    handler = STEPS.get(step, lost)
    return await _in_transaction(request, form, lambda db, ctx: _answer(db, ctx, form, handler))


@router.api_route("/status", methods=["POST", "GET"])
async def status(form: TwilioForm, request: Request) -> Response:
    return await _in_transaction(
        request,
        form,
        lambda db, ctx: _quietly(
            db, lambda: calls.apply_status(db, form, now=ctx.clock(), policy=_policy(ctx))
        ),
    )


@router.api_route("/recording", methods=["POST", "GET"])
async def recording(form: TwilioForm, request: Request) -> Response:
    return await _in_transaction(
        request, form, lambda db, ctx: _quietly(db, lambda: calls.record_message(db, form, now=ctx.clock()))
    )
