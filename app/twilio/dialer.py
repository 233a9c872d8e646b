"""REST requests a webhook decided on, made after its answer has gone back.

Twilio waits at most 15 s for a webhook, and the phone line answers within its own
deadline (app/deadline.py). Placing the partner's leg, or redirecting a live leg, is a
request to Twilio's REST API that can take seconds when Twilio is slow. Made inside the
webhook, a slow Twilio would push the answer past the deadline: the caller would hear
the apology for a call that in fact went through. So the webhook only commits what it
decided (the partner's leg is asked for, `partner_status = queued`) and hands the
request to this small pool of its own threads; the caller is already in the room,
hearing the hold line. When the request fails, the caller is moved out of the room and
told, like any other partner who could not come to the phone.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

import ivr.flow as flow
from app.context import Context
from app.models import Call, Participant
from app.services import calls
from app.services.cursor import OnCursor
from app.services.outbound import EndLeg, Outbound, PlacePartnerLeg, RedirectLeg
from app.settings import PLACEHOLDER_ACCOUNT_SID
from app.twilio import rest
from ivr.vocab import CallStatus, EndReason, Leg, StepName

log = logging.getLogger(__name__)

# the partner's leg and redirects are wanted now or not at all: a short wait, then the caller is told
LEG_REQUEST_TIMEOUT_SECONDS = 5
MACHINE_DETECTION = "Enable"  # the partner's leg: know at once, say nothing to a machine
REAL_TWILIO = "https://api.twilio.com"


class Dialer:
    def __init__(
        self,
        ctx: Context,
        sessions: sessionmaker[Session],
        *,
        client: rest.CallPlacer | None = None,
        workers: int = 4,
    ) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dialer")
        self._busy = 0
        self._idle = threading.Condition()
        # requests kept for whoever waits for the dialer (run_when_waited), else None
        self._kept: deque[Outbound] | None = None

    def run_when_waited(self) -> None:
        """For a simulation that waits for the dialer after every request it sends
        (`wait_idle`): the requests are kept, and made by the waiting thread when it
        waits, in the order they came, with what follows from them. The same requests,
        made after the same commits and before the simulation goes on; only no thread is
        woken for each (in-process, the hand-over cost more than a partner's leg)."""
        self._kept = deque()

    # ------------------------------------------------------------ the REST client

    @property
    def client(self) -> rest.CallPlacer | None:
        """The SDK client, or None in development without a Twilio account: then no request
        goes to the real API (a fake is used by pointing TWILIO_API_URL at it)."""
        if self._client is None:
            settings = self.ctx.settings
            if (
                settings.twilio_account_sid == PLACEHOLDER_ACCOUNT_SID
                and settings.twilio_api_url.rstrip("/") == REAL_TWILIO
            ):
                return None
            self._client = rest.make_twilio_client(settings, timeout=LEG_REQUEST_TIMEOUT_SECONDS)
        return self._client

    @client.setter
    def client(self, value: rest.CallPlacer) -> None:
        self._client = value

    # ------------------------------------------------------------ work

    def submit(self, requests: Iterable[Outbound]) -> None:
        if self._kept is not None:
            self._kept.extend(requests)
            return
        for request in requests:
            with self._idle:
                self._busy += 1
            self._pool.submit(self._run, request)

    def wait_idle(self, timeout: float = 15.0) -> bool:
        """True once every request handed over so far (and what followed from it) is done."""
        if self._kept is not None:
            while self._kept:
                self._make(self._kept.popleft())
            return True
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _run(self, request: Outbound) -> None:
        try:
            self._make(request)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _make(self, request: Outbound) -> None:
        try:
            match request:
                case PlacePartnerLeg():
                    self._place(request)
                case RedirectLeg(sid, step, room):
                    self._change(sid, lambda client: rest.redirect_call(client, sid, self._url(step, room)))
                case EndLeg(sid):
                    self._change(sid, lambda client: rest.end_call(client, sid))
        except Exception:
            log.exception("a request to Twilio could not be carried out")

    def _url(self, step: StepName, room: str) -> str:
        return flow.Urls(self.ctx.settings.public_base_url).step(step, room=room)

    def _now(self) -> datetime:
        return self.ctx.clock().astimezone(UTC)

    def _change(self, sid: str, change: Callable[[rest.CallPlacer], rest.UpdateResult]) -> None:
        client = self.client
        if client is None:
            return
        result = change(client)
        if isinstance(result, rest.NotDone):
            # e.g. the leg hung up a moment before (21220): nothing is left to move
            log.info("call %s was not changed: %s", sid, result.detail)

    def _place(self, request: PlacePartnerLeg) -> None:
        """Ring the partner for the call: one read before the request to Twilio, one write
        after it (Core, one statement each); the ORM only when the leg is not placed."""
        with self.sessions() as db:
            wanted = _LEG_WANTED.first(db, {"call": request.call_id, "person": request.partner_id})
            if wanted is None:
                return
            partner_sid, partner_status, caller_status, ciphertext = wanted
            if partner_sid is not None or partner_status != CallStatus.QUEUED:
                return
            phone = self.ctx.vault.decrypt(ciphertext) if ciphertext else None
            caller_gone = caller_status is not None and caller_status.is_terminal
            if caller_gone or phone is None:
                # the caller hung up before the partner's phone rang, or the number was removed
                self._not_placed_yet(
                    db, request.call_id, CallStatus.CANCELED if caller_gone else CallStatus.FAILED
                )
                return
        client = self.client
        urls = flow.Urls(self.ctx.settings.public_base_url)
        result: rest.PlaceResult
        if client is None:
            result = rest.Unreachable("no Twilio account configured; point TWILIO_API_URL at a fake")
        else:
            result = rest.place_call(
                client,
                to=phone,
                from_=self.ctx.settings.programme_number,
                url=urls.step(StepName.WHISPER, room=request.room),
                status_callback=urls.leg_status(request.room),
                machine_detection=MACHINE_DETECTION,
                timeout=flow.PARTNER_RING_SECONDS,
            )
        followups: list[Outbound] = []
        with self.sessions() as db:
            match result:
                case rest.Placed(sid):
                    placed = _LEG_PLACED.first(db, {"call": request.call_id, "sid": sid})
                    if placed is None:
                        return
                    (caller_status,) = placed
                    if caller_status is not None and caller_status.is_terminal:
                        # the caller hung up while the partner's phone was being rung
                        followups.append(EndLeg(sid))
                case _:
                    call = db.get(Call, request.call_id, with_for_update=True)
                    if call is None:
                        return
                    log.warning("the partner's leg of call %s was not placed: %s", call.id, result)
                    followups = self._not_placed(db, call, CallStatus.FAILED)
            db.commit()
        self.submit(followups)

    def _not_placed_yet(self, db: Session, call_id: int, status: CallStatus) -> None:
        """The leg will not be placed after all: looked at again under the call's lock."""
        call = db.get(Call, call_id, with_for_update=True)
        if call is None or call.partner_call_sid is not None or call.partner_status != CallStatus.QUEUED:
            return
        told = self._not_placed(db, call, status)
        db.commit()
        self.submit(told)

    def _not_placed(self, db: Session, call: Call, status: CallStatus) -> list[Outbound]:
        call.partner_status = status
        call.partner_ended_at = call.partner_ended_at or self._now()
        if status == CallStatus.FAILED:
            call.end_reason = call.end_reason or EndReason.PARTNER_LEG_NOT_PLACED
        effects = flow.leg_ended(Leg.PARTNER, calls.bridge_facts(call))
        return calls.record(db, call, effects, now=self._now(), policy=self.ctx.policy)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# The two statements run on the driver's cursor (OnCursor): the simulator, and a
# caller on hold, wait for each leg.
# whether the call still wants its partner's leg, and the partner's number (sealed)
_LEG_WANTED = OnCursor(
    select(Call.partner_call_sid, Call.partner_status, Call.status, Participant.phone_ciphertext)
    .outerjoin(Participant, Participant.id == bindparam("person"))
    .where(Call.id == bindparam("call")),
    "call",
    "person",
)
# the leg Twilio placed is the call's partner leg (unless one was learnt first); and
# whether the caller is still there
_LEG_PLACED = OnCursor(
    update(Call)
    .where(Call.id == bindparam("call"))
    .values(partner_call_sid=func.coalesce(Call.partner_call_sid, bindparam("sid")))
    .returning(Call.status),
    "call",
    "sid",
)

_made = threading.Lock()


def dialer_for(app: FastAPI) -> Dialer:
    """The app's dialer, made on first use with the phone line's own sessions."""
    with _made:
        dialer: Dialer | None = getattr(app.state, "dialer", None)
        if dialer is None:
            dialer = Dialer(app.state.context, app.state.phone_sessionmaker)
            app.state.dialer = dialer
        return dialer
