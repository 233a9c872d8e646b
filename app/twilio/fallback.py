"""`/twilio/fallback`: the number's "primary handler fails" URL in the Twilio console.

Twilio requests it when the main webhook cannot be reached or fails; it needs no
database, so it answers even when everything else is down: the apology, the care
team's number, goodbye.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

import ivr.flow as flow
from app import metrics
from app.context import get_context
from app.twilio.signature import TwilioForm

router = APIRouter(prefix="/twilio", tags=["twilio"], include_in_schema=False)


def apology_twiml(support_number: str | None) -> str:
    return str(flow.fallback_apology(support_number))


@router.api_route("/fallback", methods=["POST", "GET"])
async def fallback(form: TwilioForm, request: Request) -> Response:
    settings = get_context(request).settings
    metrics.apology_served("fallback")
    return Response(apology_twiml(settings.support_phone_number), media_type="application/xml")
