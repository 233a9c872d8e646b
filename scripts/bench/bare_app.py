"""The baseline for scripts/bench/webhook.py: FastAPI answering static TwiML of the same size."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response

import ivr.flow as flow

_LINE = flow.Line(flow.Urls("http://127.0.0.1"), "+18005550100", datetime.now(UTC))
_CALLER = flow.Caller(
    flow.Person(1, "Ana", "America/New_York"),
    1,
    flow.Partner(2, "Bea", "America/Chicago"),
)
TWIML = str(flow.inbound(_CALLER, _LINE, room="room-" + "0" * 24))

app = FastAPI()


@app.post("/twilio/voice")
async def voice(request: Request) -> Response:
    await request.form()
    return Response(TWIML, media_type="application/xml")


# A second baseline: the same, plus one committed INSERT through the same engine
# settings Peerline uses (WAL, BEGIN IMMEDIATE), made in the event loop (no thread hop).
# It shows the floor for any webhook that must write down the call before it answers.
import os  # noqa: E402

from sqlalchemy import text  # noqa: E402

from app.db import make_engine  # noqa: E402

write_app = FastAPI()
_engine = make_engine(os.environ.get("BARE_DATABASE_URL", "sqlite:///./bare-bench.db"))
with _engine.begin() as _conn:
    _conn.execute(text("CREATE TABLE IF NOT EXISTS bench_call (sid VARCHAR(64) PRIMARY KEY)"))


def _write(sid: str) -> None:
    with _engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_call (sid) VALUES (:sid)"), {"sid": sid})


@write_app.post("/twilio/voice")
async def voice_with_write(request: Request) -> Response:
    form = await request.form()
    _write(str(form.get("CallSid", "")))
    return Response(TWIML, media_type="application/xml")
