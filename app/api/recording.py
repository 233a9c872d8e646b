"""Playing a care-team message: the recording, fetched from Twilio only once the request is committed.

The API and the console both answer with this. By the time the response is sent, FastAPI has
closed the function-scoped dependencies, so the session has committed: the listen's audit row is
stored whatever Twilio then does, and a slow Twilio (up to 15 s) does not hold the transaction
open (on SQLite, the write lock every webhook of a live call waits for).
"""

from __future__ import annotations

from fastapi import Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from app.settings import Settings
from app.twilio import rest


class _AfterCommit(Response):
    def __init__(self, settings: Settings, url: str) -> None:
        super().__init__()
        self.settings, self.url = settings, url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer: Response
        found = await run_in_threadpool(rest.fetch_recording, self.settings, self.url)
        if isinstance(found, rest.FetchedRecording):
            answer = Response(found.content, media_type=found.media_type)
        else:
            # the gateway failed, not the request
            answer = JSONResponse({"detail": found.detail}, status_code=502)
        await answer(scope, receive, send)


def recording_response(settings: Settings, recording_sid: str) -> Response:
    """The recording, with the account's credentials (never a public link); a 502 if Twilio fails."""
    return _AfterCommit(settings, rest.recording_url(settings, recording_sid))
