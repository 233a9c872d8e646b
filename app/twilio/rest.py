"""The outbound Twilio client: the SDK, pointed at TWILIO_API_URL so tests use a local fake.

What Twilio answered is turned into a type here, once: callers decide on `Placed`,
`Rejected`, `RateLimited`, `Unreachable` or `Unknown`, never on exception text or
status codes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from app import metrics
from app.settings import Settings
from ivr.vocab import STATUS_EVENTS, CallStatus

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10
RECORDING_TIMEOUT_SECONDS = 15


def make_twilio_client(settings: Settings, *, timeout: float | None = None) -> Client:
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=TwilioHttpClient(timeout=timeout or REQUEST_TIMEOUT_SECONDS),
    )
    # with twilio 9.x this sends every Calls request to the configured base URL
    client.api.base_url = settings.twilio_api_url
    return client


class CallPlacer(Protocol):
    """What the service needs from the SDK client: `client.calls.create(...)`,
    `client.calls(sid).update(...)` and `client.calls(sid).fetch()`."""

    @property
    def calls(self) -> Any: ...


# ---------------------------------------------------------------- placing a call


@dataclass(frozen=True)
class Placed:
    sid: str


@dataclass(frozen=True)
class Rejected:
    """Twilio refused this call (bad number, bad credentials...): trying again will not help."""

    detail: str


@dataclass(frozen=True)
class RateLimited:
    """Twilio asked us to slow down: the limit is the account's, so every call should wait."""

    detail: str


@dataclass(frozen=True)
class Unreachable:
    """The request never reached Twilio: no call was placed, so it is safe to try later."""

    detail: str


@dataclass(frozen=True)
class Unknown:
    """The request may have reached Twilio (a 5xx, a timeout after sending): the call may exist."""

    detail: str


PlaceResult = Placed | Rejected | RateLimited | Unreachable | Unknown


@metrics.timed_twilio("calls.create")
def place_call(
    client: CallPlacer,
    *,
    to: str,
    from_: str,
    url: str,
    status_callback: str,
    machine_detection: str | None = None,
    timeout: int | None = None,
) -> PlaceResult:
    """`calls.create` with POST callbacks for every status event, and what came of it.

    `timeout` is how long the phone rings before Twilio gives up (no-answer).
    """
    options: dict[str, Any] = {}
    if machine_detection is not None:
        options["machine_detection"] = machine_detection
    if timeout is not None:
        options["timeout"] = timeout
    try:
        call = client.calls.create(
            to=to,
            from_=from_,
            url=url,
            method="POST",
            status_callback=status_callback,
            # the REST API wants one form field per event, so a list
            status_callback_event=[str(event) for event in STATUS_EVENTS],
            status_callback_method="POST",
            **options,
        )
    except TwilioRestException as exc:
        if exc.status == 429:
            return RateLimited("Twilio answered 429")
        if exc.status >= 500:
            return Unknown(f"Twilio answered {exc.status}")
        return Rejected(f"Twilio refused the call ({exc.status}, code {exc.code})")
    except ConnectTimeout:
        return Unreachable("could not connect to Twilio")
    except RequestsConnectionError as exc:
        if _never_connected(exc):
            return Unreachable("could not connect to Twilio")
        return Unknown("connection to Twilio broke; the call may have been placed")
    except Exception as exc:  # a timeout after sending: Twilio may have placed the call
        return Unknown(f"{type(exc).__name__} while placing the call")
    return Placed(str(call.sid))


def _never_connected(exc: RequestsConnectionError) -> bool:
    """Refused, unresolvable or timed out while connecting: nothing was sent.

    requests wraps a failed connection as MaxRetryError(reason=NewConnectionError), a
    kind of ConnectTimeoutError; a connection that broke after sending is a ProtocolError.
    """
    cause = exc.args[0] if exc.args else None
    reason = cause.reason if isinstance(cause, MaxRetryError) else cause
    return isinstance(reason, ConnectTimeoutError)


# ---------------------------------------------------------------- a live call


@dataclass(frozen=True)
class Done:
    """Twilio did what was asked of a live call."""


@dataclass(frozen=True)
class NotDone:
    """Twilio would not, or could not be asked: the call had ended (21220), is unknown
    (20404), or Twilio was not reached."""

    detail: str
    code: int | None = None


UpdateResult = Done | NotDone


def redirect_call(client: CallPlacer, sid: str, url: str) -> UpdateResult:
    """`calls(sid).update(url=…)`: Twilio stops what the call is doing (leaving a room, with
    its leave callback, and without its Dial action) and fetches the new TwiML."""
    return _update(client, sid, url=url, method="POST")


def end_call(client: CallPlacer, sid: str) -> UpdateResult:
    """End a leg nobody is left for: `canceled` while it rings, `completed` once answered."""
    result = _update(client, sid, status="canceled")
    if isinstance(result, NotDone) and result.code is not None:
        return _update(client, sid, status="completed")
    return result


@metrics.timed_twilio("calls.update")
def _update(client: CallPlacer, sid: str, **changes: str) -> UpdateResult:
    try:
        client.calls(sid).update(**changes)
    except TwilioRestException as exc:
        return NotDone(f"Twilio answered {exc.status}", exc.code)
    except Exception as exc:  # a live call is changed now or never: no retry
        return NotDone(f"{type(exc).__name__} while changing the call")
    return Done()


@dataclass(frozen=True)
class FetchedCall:
    """A call as Twilio's REST API describes it, for calls whose last callback never came."""

    status: CallStatus | None
    duration_seconds: int | None
    ended_at: datetime | None


@dataclass(frozen=True)
class CallUnknown:
    """Twilio has no such call (404): it was never placed, or not under this account."""


@dataclass(frozen=True)
class FetchFailed:
    detail: str


FetchResult = FetchedCall | CallUnknown | FetchFailed


@metrics.timed_twilio("calls.fetch")
def fetch_call(client: CallPlacer, sid: str) -> FetchResult:
    try:
        call = client.calls(sid).fetch()
    except TwilioRestException as exc:
        if exc.status == 404:
            return CallUnknown()
        return FetchFailed(f"Twilio answered {exc.status}")
    except Exception as exc:
        return FetchFailed(f"{type(exc).__name__} while fetching the call")
    try:
        status: CallStatus | None = CallStatus(str(call.status))
    except ValueError:
        status = None
    duration = str(call.duration) if call.duration is not None else ""
    ended = call.end_time if isinstance(call.end_time, datetime) else None
    return FetchedCall(status, int(duration) if duration.isdigit() else None, ended)


# ---------------------------------------------------------------- fetching a recording


@dataclass(frozen=True)
class FetchedRecording:
    content: bytes
    media_type: str


@dataclass(frozen=True)
class RecordingUnavailable:
    """Twilio could not be reached, or would not hand the recording over."""

    detail: str


def recording_url(settings: Settings, recording_sid: str) -> str:
    """Where a recording lives under TWILIO_API_URL: development and tests reach the fake and
    never the real API, whatever host the RecordingUrl Twilio sent names."""
    return (
        f"{settings.twilio_api_url}/2010-04-01/Accounts/{settings.twilio_account_sid}"
        f"/Recordings/{recording_sid}.mp3"
    )


@metrics.timed_twilio("recordings.fetch")
def fetch_recording(settings: Settings, url: str) -> FetchedRecording | RecordingUnavailable:
    """A care-team message's audio, with the account's credentials: never a public link."""
    try:
        upstream = httpx.get(
            url,
            auth=(settings.twilio_account_sid, settings.twilio_auth_token),
            timeout=RECORDING_TIMEOUT_SECONDS,
            # Twilio may answer with a redirect to where the media is stored
            follow_redirects=True,
        )
    except httpx.HTTPError as exc:
        log.warning("could not fetch a recording from Twilio: %s", type(exc).__name__)
        return RecordingUnavailable("could not fetch the recording from Twilio")
    if upstream.status_code != 200:
        return RecordingUnavailable(f"Twilio answered {upstream.status_code} for the recording")
    return FetchedRecording(upstream.content, upstream.headers.get("content-type", "audio/mpeg"))
