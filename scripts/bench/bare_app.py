"""The baseline for scripts/bench/webhook.py: FastAPI answering static TwiML of the same size."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response

import ivr.flow as flow

_LINE = flow.Line(flow.Urls("http://127.0.0.1"), "+18005550100", datetime.now(UTC))
_CALLER = flow.Caller(
    flow.Person(1, "Ana", "America/New_York"),
    1,
    flow.Partner(2, "Bea", "America/Chicago", phone="+16175550102"),
)
TWIML = str(flow.inbound(_CALLER, _LINE))

app = FastAPI()


@app.post("/twilio/voice")
async def voice(request: Request) -> Response:
    await request.form()
    return Response(TWIML, media_type="application/xml")
