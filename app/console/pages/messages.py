"""The care team's inbox: messages participants left, listening to one, marking it handled."""

from __future__ import annotations

import html
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from app.api.pagination import Cursor, after, cursor_after
from app.console.deps import CheckedForm, ConsoleId, Nurse
from app.console.render import error_page, go, note_too_long, page
from app.console.tone import tone_wav
from app.db import SessionDep
from app.models import Call
from app.services import care, queries
from app.services.audit import Action
from app.services.errors import NotFound
from app.settings import PLACEHOLDER_ACCOUNT_SID, Settings
from app.twilio import rest

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 25
HANDLED = {"new": False, "handled": True, "all": None}


@router.get("/messages")
def messages_page(
    request: Request,
    who: Nurse,
    db: SessionDep,
    show: Annotated[Literal["new", "handled", "all"], Query()] = "new",
    cursor: Cursor = None,
) -> Response:
    found = queries.messages(db, handled=HANDLED[show], participant_id=None, after=after(cursor), limit=PAGE)
    call_ids = {m.call_id for m in found if m.call_id}
    calls = {c.id: c for c in (db.get(Call, i) for i in call_ids) if c is not None}
    who.audit(db, Action.MESSAGES_READ, f"{len(found)} messages")
    return page(
        request,
        who,
        "messages.html",
        messages=found.rows,
        # the callers and whom they called, so "did not press 1" says who did not
        people=queries.participants_by_id(
            db,
            [m.participant_id for m in found if m.participant_id]
            + [i for c in calls.values() for i in (c.initiator_id, c.callee_id) if i],
        ),
        calls=calls,
        show=show,
        next_cursor=cursor_after(found.next_key),
    )


@router.post("/messages/{message_id}/handle")
def handle_message(
    request: Request, who: Nurse, form: CheckedForm, db: SessionDep, message_id: ConsoleId
) -> Response:
    try:
        message = care.get_message(db, message_id)
    except NotFound:
        # a message that is not there is not there to handle: back to the inbox, as after a double post
        return go(request, who, "/console/messages")
    note = form.get("note", "")
    if (refusal := note_too_long(request, note, who)) is not None:
        return refusal
    if care.mark_handled(message, by=who.email, now=who.ctx.clock(), note=note):
        who.audit(db, Action.MESSAGE_HANDLE, f"message:{message.id}")
    return go(request, who, "/console/messages")


def _simulated(settings: Settings) -> bool:
    """Development without a Twilio account: every recording is the fake's, never a real voice."""
    return settings.environment == "development" and settings.twilio_account_sid == PLACEHOLDER_ACCOUNT_SID


class _Recording(Response):
    """The recording, fetched only after the request has committed (as app/api/recording.py
    does, so the listen's audit row is stored whatever Twilio does); a reason in words when
    Twilio will not hand it over, and a generated tone in place of the fake's silent frame."""

    def __init__(self, settings: Settings, url: str, seconds: int | None, as_page: bool) -> None:
        super().__init__()
        self.settings, self.url, self.seconds, self.as_page = settings, url, seconds, as_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer: Response
        found = await run_in_threadpool(rest.fetch_recording, self.settings, self.url)
        if isinstance(found, rest.RecordingUnavailable):
            reason = (
                f"Peerline asked Twilio for this recording and {found.detail[0].lower()}{found.detail[1:]}. "
                "Try again in a minute; if it keeps failing, tell the programme's administrator."
            )
            answer = (
                HTMLResponse(_PROBLEM.format(reason=html.escape(reason)), status_code=502)
                if self.as_page
                else PlainTextResponse(reason, status_code=502)
            )
        elif _simulated(self.settings):
            answer = Response(tone_wav(self.seconds), media_type="audio/wav")
        else:
            answer = Response(found.content, media_type=found.media_type)
        await answer(scope, receive, send)


# a bare page: the response is built after the request's session has closed, so no template
# with the signed-in menu can be rendered here; it links straight back to the inbox
_PROBLEM = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Recording unavailable · Peerline'
    '</title><link rel="stylesheet" href="/console/static/console.css"></head><body><main id="main">'
    '<h1>The recording cannot be played just now</h1><p class="lead">{reason}</p>'
    '<p><a href="/console/messages">Back to the messages</a></p></main></body></html>'
)


@router.get("/messages/{message_id}/recording")
def message_recording(request: Request, who: Nurse, db: SessionDep, message_id: ConsoleId) -> Response:
    try:
        message = care.get_message(db, message_id)
    except NotFound:
        return error_page(request, 404, "No such message", f"There is no message {message_id}.", who)
    who.audit(db, Action.MESSAGE_LISTEN, f"message:{message.id}")
    settings = who.ctx.settings
    # opened as a page (the "open the recording" link) rather than by the player
    as_page = "text/html" in request.headers.get("accept", "")
    url = rest.recording_url(settings, message.recording_sid)
    return _Recording(settings, url, message.duration_seconds, as_page)
