"""The outbound Twilio client: the SDK, pointed at TWILIO_API_URL so tests use a local fake."""

from __future__ import annotations

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.settings import Settings

REQUEST_TIMEOUT_SECONDS = 10


def make_twilio_client(settings: Settings) -> Client:
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=TwilioHttpClient(timeout=REQUEST_TIMEOUT_SECONDS),
    )
    # with twilio 9.x this sends every Calls request to the configured base URL
    client.api.base_url = settings.twilio_api_url
    return client
