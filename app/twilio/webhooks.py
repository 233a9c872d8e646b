"""Twilio webhooks: verify, load facts, let `ivr` decide, record, commit, answer TwiML.

A live call must never hear "an application error has occurred": any failure after
the signature check is answered with a spoken apology and the care-team number.
Requests to Twilio's REST API that a step decided on (ring the partner, move a live
leg) are handed to the dialer after the commit, never made while Twilio waits.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

import ivr.flow as flow
from app import metrics
from app.bodylimit import ARRIVED
from app.context import Context, get_context
from app.deadline import Abandoned, DeadlineRunner, Guard
from app.models import Call, Participant
from app.services import calls, notices
from app.services.outbound import Outbound
from app.services.participants import find_by_phone
from app.services.policy import Policy
from app.twilio import fast, forms
from app.twilio.dialer import Dialer, dialer_for
from app.twilio.forms import VoiceRequest
from app.twilio.signature import twilio_form
from ivr.phone import is_withheld, try_normalise
from ivr.vocab import CallKind, Language, Leg, ParticipantStatus, StepName

log = logging.getLogger(__name__)


class Turn:
    """One webhook's work: the session, the line, the request, and REST requests for later."""

    def __init__(self, db: Session, ctx: Context, line: flow.Line, request: VoiceRequest) -> None:
        self.db = db
        self.ctx = ctx
        self.line = line
        self.request = request
        self.outbound: list[Outbound] = []

    @property
    def policy(self) -> Policy:
        return self.ctx.policy

    def record(self, call: Call, step: flow.Step) -> flow.Step:
        # who hears which language and which notice: per leg, kept here on the call's row
        others: list[flow.Effect] = []
        for effect in step.effects:
            match effect:
                case flow.Speaks(leg, language):
                    if leg == Leg.CALLER:
                        call.caller_language = language.value
                    else:
                        call.partner_language = language.value
                case flow.NoticePlayed(version, leg):
                    if leg == Leg.CALLER:
                        call.notice_version = version
                    else:
                        call.partner_notice_version = version
                case _:
                    others.append(effect)
        self.outbound += calls.record(self.db, call, others, now=self.line.now, policy=self.policy)
        return step

    def speaking(self, language: Language | str | None) -> flow.Line:
        """The line as this step's listener hears it: the URL's `lang` first (the step
        that wrote it knew), else what the call's row says, else English."""
        chosen = self.request.query.lang or fast.language(language)
        if chosen is not None:
            self.line = self.line.speaking(chosen)
        return self.line


Handler = Callable[[Turn], flow.Step]


def twiml(step: flow.Step) -> Response:
    return Response(str(step), media_type="application/xml")


def _region(ctx: Context, request: VoiceRequest) -> str:
    """Where the listener's phone is: the end of the call that is not the programme's number."""
    for number in (request.from_, request.to):
        e164 = fast.normalised(number, ctx.settings.default_region)  # memoised: pure and repeated
        if e164 is not None and e164 != ctx.settings.programme_number:
            return fast.region_of(e164) or ctx.settings.default_region
    return ctx.settings.default_region


def _line(ctx: Context, request: VoiceRequest | None = None, db: Session | None = None) -> flow.Line:
    now = ctx.clock()
    # the notice in force and any recorded audio: cached per process, never a slow read here
    managed = notices.in_force(db) if db is not None else None
    return flow.Line(
        flow.Urls(ctx.settings.public_base_url),
        ctx.settings.programme_number,
        now,
        support_number=ctx.settings.support_phone_number,
        region=_region(ctx, request) if request is not None else ctx.settings.default_region,
        nurse_line=ctx.policy.nurse_line(now),
        language=(request.query.lang if request is not None else None) or Language.EN,
        notice=managed.notice if managed is not None else flow.BUILT_IN_NOTICE,
        audio=managed.audio if managed is not None else {},
    )


def _answer(
    db: Session, ctx: Context, request: VoiceRequest, handler: Handler, guard: Guard, dialer: Dialer
) -> Response:
    """One transaction: load facts, decide, record, commit; then the TwiML goes back.

    The webhooks commit themselves (not a session dependency): they run on the phone
    line's own threads under a deadline, and may commit only if the answer has not
    already gone back as the apology. REST requests go to the dialer only after that.
    """
    try:
        turn = Turn(db, ctx, _line(ctx, request, db), request)
        result = handler(turn)
        guard.begin_commit()
        _commit(db)
        dialer.submit(turn.outbound)
        return twiml(result)
    except Abandoned:
        _safe_rollback(db)
        raise
    except Exception as exc:
        if guard.runs_again(exc):
            raise  # not its own to answer (app/deadline.py)
        log.exception("webhook failed; the caller hears the apology")
        metrics.apology_served("error")
        _safe_rollback(db)
        return twiml(
            flow.apology(
                ctx.settings.support_phone_number, _region(ctx, request), request.query.lang or Language.EN
            )
        )


def _quietly(
    db: Session, work: Callable[[], list[Outbound] | None], guard: Guard, dialer: Dialer
) -> Response:
    """Status, recording and conference callbacks: always an empty <Response/>, whatever happens."""
    try:
        outbound = work() or []
        guard.begin_commit()
        _commit(db)
        dialer.submit(outbound)
    except Abandoned:
        _safe_rollback(db)
        raise
    except Exception as exc:
        if guard.runs_again(exc):
            raise  # not its own to answer (app/deadline.py)
        log.exception("callback could not be recorded")
        _safe_rollback(db)
    return twiml(flow.empty())


def _commit(db: Session) -> None:
    """The step's work committed (in a batch: flushed into the batch's transaction). A
    step or callback that wrote on the batch's connection directly (app/twilio/fast.py)
    left the session without a transaction of its own: there is nothing to commit.
    (Anything done through the session, even adding an object, begins one.)"""
    if db.in_transaction():
        db.commit()


def _safe_rollback(db: Session) -> None:
    """Nothing of a failed step is kept: the session's work, and what the fast path wrote
    on the batch's connection directly; either ends the batch's transaction, which the
    runner sees (app/deadline.py) and runs the others again without this one."""
    try:
        db.rollback()
        bind = db.get_bind()
        if isinstance(bind, Connection) and bind.in_transaction():
            bind.rollback()
    except Exception:
        log.exception("rollback failed")


def _call(turn: Turn) -> Call | None:
    sid = turn.request.call_sid
    return calls.open_call(turn.db, sid, now=turn.line.now) if sid else None


def _active(person: Participant | None) -> Participant | None:
    return person if person is not None and person.status == ParticipantStatus.ACTIVE else None


def _caller(turn: Turn, person: Participant | None, call: Call) -> flow.Caller | None:
    if person is None:
        return None
    facts = calls.caller_facts(turn.db, turn.ctx.vault, person, now=turn.line.now, exclude_call_id=call.id)
    # a language chosen by key on this call wins over the one on record
    language = (
        turn.request.query.lang or fast.language(call.caller_language) or fast.language(person.language)
    )
    return dataclasses.replace(
        facts, person=dataclasses.replace(facts.person, language=language or Language.EN)
    )


# ---------------------------------------------------------------- steps


def inbound(turn: Turn) -> flow.Step:
    fast_step = _inbound_fast(turn)
    if fast_step is not None:
        return fast_step
    call = _call(turn)
    if call is None:
        return flow.lost(turn.line)
    request, ctx = turn.request, turn.ctx
    e164 = try_normalise(request.from_, ctx.settings.default_region)
    # A withheld caller ID is shared by every caller who withholds theirs: counting wrong
    # numbers against it would let two callers who mistype lock out all of them. Those
    # callers are counted per call instead (three tries, then goodbye).
    withheld = e164 is None or is_withheld(request.from_)
    call.caller_index = call.caller_index or ctx.vault.blind_index(
        "withheld-call:" + call.twilio_call_sid if withheld else e164 or ""
    )
    person = _active(find_by_phone(turn.db, ctx.vault, e164) if e164 else None)
    caller = _caller(turn, person, call)
    # the lockout matters only to a caller we must ask for a number
    locked = caller is None and calls.is_locked_out(turn.db, call.caller_index, turn.line.now)
    return turn.record(
        call, flow.inbound(caller, turn.line, room=call.room or calls.new_room(), locked_out=locked)
    )


def _inbound_fast(turn: Turn) -> flow.Step | None:
    """A known caller from their own phone (app/twilio/fast.py); None: the general path."""
    request = turn.request
    if request.call_sid is None:
        return None
    known = fast.known_caller(
        turn.db,
        turn.ctx.vault,
        sid=request.call_sid,
        from_=request.from_,
        region=turn.ctx.settings.default_region,
        lang=request.query.lang,
        now=turn.line.now,
    )
    if known is None:
        return None
    step = flow.inbound(known.caller, turn.line, room=calls.new_room())
    before = len(turn.outbound)
    turn.record(known.call, step)
    written = fast.write_call(turn.db, known.call, turn.outbound[before:])
    if written is None:
        del turn.outbound[before:]
        return None
    turn.outbound[before:] = written
    return step


def identify(turn: Turn) -> flow.Step:
    call = _call(turn)
    if call is None:
        return flow.lost(turn.line)
    turn.speaking(call.caller_language)
    e164 = try_normalise(turn.request.digits.strip("#*"), turn.ctx.settings.default_region)
    person = _active(find_by_phone(turn.db, turn.ctx.vault, e164) if e164 else None)
    caller = _caller(turn, person, call)
    locked = caller is None and calls.is_locked_out(turn.db, call.caller_index or "", turn.line.now)
    step = flow.identify(
        caller,
        turn.line,
        room=call.room or calls.new_room(),
        tries_before=call.id_tries,
        locked_out=locked,
        digits=turn.request.digits,
    )
    return turn.record(call, step)


def hold(turn: Turn) -> flow.Step:
    return flow.hold(turn.line)


def whisper(turn: Turn) -> flow.Step:
    found = _room_call(turn)
    if found is None or found[1] != Leg.PARTNER:
        return flow.let_go(turn.line)  # the caller's own leg: nothing of the call changed
    call, leg = found
    step = flow.whisper(
        calls.bridge_facts(call),
        turn.request.answered_by,
        turn.speaking(_hears(turn, call, leg)),
        person=turn.request.query.person,
        digits=turn.request.digits,
    )
    return _saved(turn, call, turn.record(call, step))


def whisper_answer(turn: Turn) -> flow.Step:
    found = _room_call(turn)
    if found is None or found[1] != Leg.PARTNER:
        return flow.let_go(turn.line)  # the caller's own leg: nothing of the call changed
    call, leg = found
    step = flow.whisper_answer(
        turn.request.digits,
        calls.bridge_facts(call),
        turn.speaking(_hears(turn, call, leg)),
        again=turn.request.query.again,
    )
    return _saved(turn, call, turn.record(call, step))


def stepped_out(turn: Turn) -> flow.Step:
    found = _room_call(turn)
    if found is None:
        return flow.lost(turn.line)
    call, leg = found
    status = turn.request.call_status
    step = flow.stepped_out(
        leg,
        calls.bridge_facts(call),
        turn.speaking(_hears(turn, call, leg)),
        hung_up=status is not None and status.is_terminal,
    )
    return _saved(turn, call, turn.record(call, step))


def _in_call_step(decide: Callable[[Turn, Leg, flow.Bridge], flow.Step]) -> Handler:
    """A step of one leg of a bridged call: find the call by its room, decide, record."""

    def handler(turn: Turn) -> flow.Step:
        found = _room_call(turn)
        if found is None:
            return flow.lost(turn.line)
        call, leg = found
        turn.speaking(_hears(turn, call, leg))
        return _saved(turn, call, turn.record(call, decide(turn, leg, calls.bridge_facts(call))))

    return handler


away_menu = _in_call_step(lambda turn, leg, bridge: flow.away_menu(leg, bridge, turn.line))
away = _in_call_step(lambda turn, leg, bridge: flow.away(turn.request.digits, leg, bridge, turn.line))
partner_away = _in_call_step(lambda turn, leg, bridge: flow.partner_away(leg, bridge, turn.line))
partner_gone = _in_call_step(lambda turn, leg, bridge: flow.partner_gone(leg, turn.line))
partner_unreached = _in_call_step(lambda turn, leg, bridge: flow.partner_unreached(turn.line))


def message(turn: Turn) -> flow.Step:
    return flow.message_menu(turn.request.digits, turn.line)


def message_done(turn: Turn) -> flow.Step:
    # the message itself is written by the recording status callback, once it is complete
    found = _room_call(turn)
    if found is None:
        return flow.message_done(turn.line)
    call, leg = found
    line = turn.speaking(_hears(turn, call, leg))
    return _saved(
        turn, call, turn.record(call, flow.message_done(line, leg=leg, bridge=calls.bridge_facts(call)))
    )


# These steps read the call's row as plain columns and write back only what
# changed (calls.read_call, calls.in_room, calls.save): no identity map, no flush. Each
# saves before it returns, inside the webhook's one transaction.


def _room_call(turn: Turn) -> tuple[Call, Leg] | None:
    """The call whose room this step's URL names, as a plain row, and which of its legs is asking."""
    return calls.in_room(turn.db, turn.request.query.room, turn.request.call_sid)


def _own_call(turn: Turn) -> Call | None:
    """`_call`, as a plain row: the call this request's SID names, made on first sight."""
    sid = turn.request.call_sid
    return calls.read_or_open_call(turn.db, sid, now=turn.line.now) if sid else None


def _hears(turn: Turn, call: Call, leg: Leg) -> str | None:
    """The language a leg of this call hears: as kept on the call, else the person's own."""
    if leg == Leg.CALLER:
        who, kept = call.initiator_id, call.caller_language
    else:
        who, kept = call.callee_id, call.partner_language
    if kept:
        return kept
    return calls.language_of(turn.db, who) if who is not None else None


def _saved(turn: Turn, call: Call, step: flow.Step) -> flow.Step:
    calls.save(turn.db, call)
    return step


def _called_person(turn: Turn, call: Call) -> Participant | None:
    """Who we rang for a reminder: by the number called, so it works before the SID is stored."""
    if call.initiator_id is not None:
        return calls.read_person(turn.db, call.initiator_id)  # read only: plain columns
    e164 = try_normalise(turn.request.to, turn.ctx.settings.default_region)
    return find_by_phone(turn.db, turn.ctx.vault, e164) if e164 else None


def reminder(turn: Turn) -> flow.Step:
    call = _own_call(turn)
    if call is None:
        return flow.lost(turn.line)
    call.kind = CallKind.REMINDER
    person = _active(_called_person(turn, call))
    facts = None
    if person is not None:
        call.initiator_id = call.initiator_id or person.id
        call.pair_id = call.pair_id or person.active_pair_id
        language = fast.language(call.caller_language) or fast.language(person.language) or Language.EN
        facts = flow.Person(person.id, person.name, person.timezone, language=language)
    step = flow.reminder(
        facts,
        turn.request.answered_by,
        turn.line,
        confirmed=turn.request.query.person,
        digits=turn.request.digits,
    )
    return _saved(turn, call, turn.record(call, step))


def reminder_unconfirmed(turn: Turn) -> flow.Step:
    call = _own_call(turn)
    if call is None:
        return flow.reminder_unconfirmed(turn.line)
    turn.speaking(_hears(turn, call, Leg.CALLER))
    return _saved(turn, call, turn.record(call, flow.reminder_unconfirmed(turn.line)))


def reminder_answer(turn: Turn) -> flow.Step:
    call = _own_call(turn)
    if call is None:
        return flow.lost(turn.line)
    person = _active(_called_person(turn, call))
    caller = _caller(turn, person, call)
    step = flow.reminder_answer(turn.request.digits, caller, turn.line, room=call.room or calls.new_room())
    return _saved(turn, call, turn.record(call, step))


def lost(turn: Turn) -> flow.Step:
    return flow.lost(turn.line)


STEPS: dict[StepName, Handler] = {
    StepName.IDENTIFY: identify,
    StepName.HOLD: hold,
    StepName.WHISPER: whisper,
    StepName.WHISPER_ANSWER: whisper_answer,
    StepName.STEPPED_OUT: stepped_out,
    StepName.AWAY_MENU: away_menu,
    StepName.AWAY: away,
    StepName.PARTNER_AWAY: partner_away,
    StepName.PARTNER_GONE: partner_gone,
    StepName.PARTNER_UNREACHED: partner_unreached,
    StepName.MESSAGE: message,
    StepName.MESSAGE_DONE: message_done,
    StepName.REMINDER: reminder,
    StepName.REMINDER_ANSWER: reminder_answer,
    StepName.REMINDER_UNCONFIRMED: reminder_unconfirmed,
}


def _handler(step: str) -> Handler:
    """The step Twilio asked for; a URL we never wrote gets the apology that still helps."""
    try:
        return STEPS[StepName(step)]
    except ValueError:
        return lost


# ---------------------------------------------------------------- routes
#
# The routes are async and hand the whole request to the phone line's runner, under the
# deadline (app/deadline.py): in the event loop on SQLite, never waiting for a lock there,
# or on the phone line's own threads. Twilio is waiting, and so is a caller.


class AfterCommit(Dialer):
    """The dialer as a step sees it: what it submits goes to the real dialer only once the
    step's transaction is committed, and so does whatever else it hands to `then`. In a
    batch (app/deadline.py) the step's own commit() only flushes into the batch's
    transaction; the partner's phone must not ring for a call that is not stored yet."""

    def __init__(self, dialer: Dialer) -> None:  # no threads of its own: it only holds requests
        self._dialer = dialer
        self.pending: list[Outbound] = []
        self.later: list[Callable[[], None]] = []

    def submit(self, requests: Iterable[Outbound]) -> None:
        self.pending.extend(requests)

    def then(self, action: Callable[[], None]) -> None:
        self.later.append(action)

    def release(self) -> None:
        if self.pending:
            self._dialer.submit(self.pending)
        for action in self.later:
            action()


async def _in_transaction(
    request: Request, work: Callable[[Session, Context, Guard, AfterCommit], Response], *, quiet: bool = False
) -> Response:
    ctx = get_context(request)
    dialer = dialer_for(request.app)

    def run(db: Session, guard: Guard) -> tuple[Response, Callable[[], None] | None]:
        after = AfterCommit(dialer)
        response = work(db, ctx, guard, after)
        return response, after.release if after.pending or after.later else None

    def too_late() -> Response:
        if quiet:
            return twiml(flow.empty())
        metrics.apology_served("deadline")
        return twiml(flow.apology(ctx.settings.support_phone_number))

    runner: DeadlineRunner = request.app.state.deadline
    return await runner.run(run, too_late, arrived=request.scope.get(ARRIVED), keep=quiet)


# The routes are plain Starlette routes: each reads its signed form itself (the check is
# app/twilio/signature.py) rather than through FastAPI's dependency injection, which cost
# more per request than parsing the form. They take no part in the OpenAPI schema.


async def voice(request: Request) -> Response:
    form = forms.voice_request(await twilio_form(request), request.query_params)
    if form.call_sid is not None and request.app.state.deadline.read_ahead is not None:
        # a known caller's read goes with the rest of its batch (app/twilio/fast.py)
        ctx = get_context(request)
        region = ctx.settings.default_region
        fast.ask_ahead(ctx.vault, sid=form.call_sid, from_=form.from_, region=region, now=ctx.clock())
    return await _in_transaction(request, lambda db, ctx, g, d: _answer(db, ctx, form, inbound, g, d))


async def voice_step(request: Request) -> Response:
    handler = _handler(str(request.path_params["step"]))
    form = forms.voice_request(await twilio_form(request), request.query_params)
    return await _in_transaction(request, lambda db, ctx, g, d: _answer(db, ctx, form, handler, g, d))


async def _callback(request: Request, work: Callable[[Session, Context], list[Outbound] | None]) -> Response:
    """A status, conference or recording callback: recorded in its own transaction, and
    kept past the deadline (app/deadline.py) because nobody waits on its empty answer."""
    return await _in_transaction(
        request, lambda db, ctx, g, d: _quietly(db, lambda: work(db, ctx), g, d), quiet=True
    )


async def status(request: Request) -> Response:
    callback = forms.status_callback(await twilio_form(request), request.query_params)
    return await _callback(
        request, lambda db, ctx: calls.apply_status(db, callback, now=ctx.clock(), policy=ctx.policy)
    )


async def conference(request: Request) -> Response:
    callback = forms.conference_callback(await twilio_form(request))
    return await _callback(
        request, lambda db, ctx: calls.apply_conference(db, callback, now=ctx.clock(), policy=ctx.policy)
    )


async def recording(request: Request) -> Response:
    callback = forms.recording(await twilio_form(request))
    return await _callback(request, lambda db, ctx: calls.record_message(db, callback, now=ctx.clock()))


class _Route(Route):
    """A Starlette route that names itself in the scope, as FastAPI's own routes do: the
    access log and the metrics label a request by its route's template, never its path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


ROUTES = [
    _Route(path, endpoint, methods=["POST", "GET"], include_in_schema=False)
    for path, endpoint in (
        ("/twilio/voice", voice),
        ("/twilio/voice/{step}", voice_step),
        ("/twilio/status", status),
        ("/twilio/conference", conference),
        ("/twilio/recording", recording),
    )
]


class Shortcut:
    """Twilio's requests go from the app's own middleware (the access log and metrics, the
    body limit, the security headers) straight to their webhook, past FastAPI's exception
    layers and the router's walk over every route of the API and the console: on the
    path of every call's every step, those layers cost more than parsing the form.

    Only a request a webhook route matches in full (path and method) is taken; anything
    else goes the usual way, and is answered as before. A webhook's refusal (403, an
    `HTTPException`) gets FastAPI's own JSON answer, as through the app's handlers (the
    console's pages are for the console's paths only); any other exception goes on up to
    the app's outermost layer, as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/twilio/"):
            for route in ROUTES:
                match, child = route.matches(scope)
                if match == Match.FULL:
                    scope.update(child)
                    await _serve(route, scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _serve(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive, send)
    try:
        response = await route.endpoint(request)
    except HTTPException as exc:
        response = await http_exception_handler(request, exc)
    await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """The webhooks join the app's own routes, not through `include_router`: an included
    router's plain routes are copied into FastAPI's own kind, which do not say which
    route answered. The routes stay listed (and answer the same) for anything that walks
    the router; Twilio's requests take the shortcut."""
    app.router.routes.extend(ROUTES)
    # the first middleware added is the innermost: inside the access log, the body
    # limit and the security headers, which every webhook still goes through
    app.add_middleware(Shortcut)
