"""Every request from Twilio is checked with the SDK's RequestValidator.

Behind a proxy the app sees another host and scheme, so the URL Twilio signed is
rebuilt from PUBLIC_BASE_URL plus the raw path and query of the request.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from twilio.request_validator import RequestValidator, compare

from app import metrics
from app.bodylimit import BODY
from app.context import get_context
from app.logs import bind_call

log = logging.getLogger(__name__)
FORM_TYPE = "application/x-www-form-urlencoded"


def signed_url(base_url: str, request: Request) -> str:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    url = base_url.rstrip("/") + raw_path.decode("latin-1")
    query = request.scope.get("query_string", b"")
    return url + ("?" + query.decode("latin-1") if query else "")


class SignedForm(dict[str, str]):
    """Form fields of one value each, as the SDK's signing reads them first (a multidict's
    `getall`): from a plain dict it tries two other kinds of mapping per field, each
    failing with an exception. Checking a signature here, and making one in the
    simulator (app/simulator/telephone.py)."""

    def getall(self, key: str) -> list[str]:
        return [self[key]]


async def _form(request: Request) -> dict[str, str]:
    """The posted fields. Twilio posts `application/x-www-form-urlencoded`: parsed here with
    the standard library, several times cheaper than the general multipart parser; any
    other body goes through Starlette's parser as before."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE:
        read = request.scope.get(BODY)  # app/bodylimit.py has read it already
        body = read if isinstance(read, bytes) else await request.body()
        return SignedForm(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    form = await request.form()
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


def _genuine(validator: RequestValidator, url: str, params: dict[str, str], signature: str) -> bool:
    """Whether Twilio signed this request. Twilio signs the URL as configured, which is the
    one rebuilt here: one HMAC decides. Only a mismatch, or a URL whose query asks for a
    body hash, goes through the SDK's whole `validate`, which tries the URL with and
    without its port too (two HMACs on every request, which showed in the profile)."""
    if "bodySHA256" not in url and compare(validator.compute_signature(url, params), signature):
        return True
    return bool(validator.validate(url, params, signature))


async def twilio_form(request: Request) -> dict[str, str]:
    """The parameters of a genuine Twilio request, or 403 and nothing changes.

    POST is what the design configures; a number set to GET by mistake still works:
    Twilio then signs the URL with its query string and no body.
    """
    ctx = get_context(request)
    signed_params: dict[str, str] = {}
    if request.method == "GET":
        params = dict(request.query_params)
    else:
        try:
            params = await _form(request)
        except Exception:  # a body that is not a form cannot have been signed by Twilio
            params = {}
        signed_params = params
    signature = request.headers.get("X-Twilio-Signature", "")
    try:
        valid = bool(signature) and _genuine(
            RequestValidator(ctx.settings.twilio_auth_token),
            signed_url(ctx.settings.public_base_url, request),
            signed_params,
            signature,
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        log.warning("rejected a request to %s without a valid Twilio signature", request.url.path)
        metrics.signature_rejected()
        raise HTTPException(status_code=403, detail="invalid or missing X-Twilio-Signature")
    bind_call(params.get("CallSid"), params.get("ParentCallSid"))  # the log's request id: the SID
    return params


TwilioForm = Annotated[dict[str, str], Depends(twilio_form)]
