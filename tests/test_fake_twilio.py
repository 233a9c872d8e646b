"""The local fake of Twilio's Calls API answers like Twilio where the service depends on it,
so a test that passes against it means something."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException

from app.settings import Settings
from app.simulator import switchboard
from app.simulator.fake_twilio import FakeTwilio
from app.simulator.telephone import Scripted, Telephone
from app.twilio import rest
from app.twilio.rest import make_twilio_client
from ivr.vocab import CallStatus
from tests.conftest import ANA, AUTH_TOKEN, PROGRAMME_NUMBER, PUBLIC_BASE_URL, ServerThread

ACCOUNT = "AC" + "0" * 32
CALLS = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
FULL = {"To": ANA, "From": PROGRAMME_NUMBER, "Url": PUBLIC_BASE_URL + "/twilio/voice/reminder"}


@pytest.fixture
def api(
    fake_twilio_server: ServerThread, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> httpx.Client:
    monkeypatch.setattr(fake_twilio, "auth_token", AUTH_TOKEN)
    return httpx.Client(base_url=fake_twilio_server.url, auth=(ACCOUNT, AUTH_TOKEN))


def _error(response: httpx.Response, status: int, code: int) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) >= {"code", "message", "more_info", "status"}
    assert (body["code"], body["status"]) == (code, status)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        pytest.param((ACCOUNT, "wrong-token"), FULL, id="a wrong token"),
        pytest.param(("AC" + "1" * 32, AUTH_TOKEN), FULL, id="another account's SID"),
        pytest.param(None, FULL, id="no credentials at all"),
    ],
)
def test_wrong_credentials_are_401_with_code_20003(
    api: httpx.Client, auth: tuple[str, str] | None, form: dict[str, str]
) -> None:
    response = httpx.post(str(api.base_url) + CALLS, data=form, auth=auth)
    _error(response, 401, 20003)


@pytest.mark.parametrize(
    ("missing", "code", "message"),
    [
        ("To", 21201, "No 'To' number is specified"),
        ("From", 21213, "No 'From' number is specified"),
        ("Url", 21205, "Url parameter is required"),
    ],
)
def test_a_call_without_what_twilio_requires_is_refused_with_twilios_code(
    api: httpx.Client, fake_twilio: FakeTwilio, missing: str, code: int, message: str
) -> None:
    form = {k: v for k, v in FULL.items() if k != missing}
    response = api.post(CALLS, data=form)
    _error(response, 400, code)
    assert message in response.json()["message"]
    assert fake_twilio.calls == []


def test_inline_twiml_instead_of_a_url_is_a_call(api: httpx.Client, fake_twilio: FakeTwilio) -> None:
    form = {"To": ANA, "From": PROGRAMME_NUMBER, "Twiml": "<Response><Hangup/></Response>"}
    response = api.post(CALLS, data=form)
    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert fake_twilio.calls[0].twiml == "<Response><Hangup/></Response>"


def test_the_sdk_sees_twilios_errors_as_twilio_rest_exceptions(
    settings: Settings,
    fake_twilio_server: ServerThread,
    fake_twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fake_twilio, "auth_token", "not-the-services-token")
    client = make_twilio_client(settings.model_copy(update={"twilio_api_url": fake_twilio_server.url}))
    with pytest.raises(TwilioRestException) as raised:
        client.calls.create(to=ANA, from_=PROGRAMME_NUMBER, url=PUBLIC_BASE_URL + "/twilio/voice/reminder")
    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert rest.fetch_call(client, "CA" + "0" * 32) == rest.FetchFailed("Twilio answered 401")


def test_a_call_is_fetched_moved_and_ended_as_twilio_allows(
    settings: Settings,
    fake_twilio_server: ServerThread,
    fake_twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fake_twilio, "auth_token", AUTH_TOKEN)
    monkeypatch.setattr(fake_twilio, "changes", [])
    client = make_twilio_client(settings.model_copy(update={"twilio_api_url": fake_twilio_server.url}))
    placed = rest.place_call(
        client,
        to=ANA,
        from_=PROGRAMME_NUMBER,
        url=PUBLIC_BASE_URL + "/twilio/voice/reminder",
        status_callback=PUBLIC_BASE_URL + "/twilio/status",
        timeout=30,
    )
    assert isinstance(placed, rest.Placed)
    assert fake_twilio.calls[0].timeout == 30
    assert rest.fetch_call(client, placed.sid) == rest.FetchedCall(CallStatus.QUEUED, None, None)
    assert rest.fetch_call(client, "CA" + "9" * 32) == rest.CallUnknown()

    # a call that has not been answered cannot be moved (21220), only cancelled
    assert rest.redirect_call(client, placed.sid, PUBLIC_BASE_URL + "/x") == rest.NotDone(
        "Twilio answered 400", 21220
    )
    assert rest.end_call(client, placed.sid) == rest.Done()
    assert fake_twilio.changes == [(placed.sid, "canceled")]
    fetched = rest.fetch_call(client, placed.sid)
    assert isinstance(fetched, rest.FetchedCall) and fetched.status == CallStatus.CANCELED
    assert rest.redirect_call(client, "CA" + "9" * 32, PUBLIC_BASE_URL + "/x") == rest.NotDone(
        "Twilio answered 404", 20404
    )

    fake_twilio.set_status(placed.sid, CallStatus.COMPLETED, 61)
    fetched = rest.fetch_call(client, placed.sid)
    assert isinstance(fetched, rest.FetchedCall)
    assert (fetched.status, fetched.duration_seconds) == (CallStatus.COMPLETED, 61)
    assert fetched.ended_at is not None and fetched.ended_at.tzinfo is not None


def test_status_callbacks_are_numbered_per_call_as_twilio_numbers_them(
    phone: Telephone, ana_and_bea: tuple[int, int, int]
) -> None:
    record = phone.call(ANA, Scripted(talk_seconds=70), Scripted(["1"]))
    by_call: dict[str, list[int]] = {}
    for _url, form in record.callbacks:
        if "CallStatus" in form and "ConferenceSid" not in form:
            by_call.setdefault(form["CallSid"], []).append(int(form["SequenceNumber"]))
    assert set(by_call) == {record.sid, record.partner_sid}
    for numbers in by_call.values():
        assert numbers == list(range(len(numbers)))
    room = [int(f["SequenceNumber"]) for _u, f in record.room_callbacks]
    assert room == sorted(room) and room[0] == 1  # a room's own numbering


def test_a_live_leg_is_moved_and_ended_by_the_rest_api_while_a_telephone_plays_it(
    phone: Telephone, ana_and_bea: tuple[int, int, int]
) -> None:
    # the service moves Ana out of the room when Bea hangs up: a REST request the telephone plays
    ana = Scripted(talk_seconds=30)
    record = phone.call(ANA, ana, Scripted(["1"]))
    ((sid, url),) = phone.fake.changes
    assert sid == record.sid and "/twilio/voice/partner-gone?room=room-" in url
    assert "Your partner has hung up." in ana.heard


def test_a_leg_placed_before_its_room_is_read_waits_for_it_a_while_and_no_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process, the partner's leg is placed before the caller's telephone has read the
    room's name: the switchboard keeps it for that room, PARK_SECONDS at most, with no
    thread of its own when it has nowhere else to ring."""
    board = switchboard.Switchboard()
    taken: list[object] = []
    board.place("https://example.org/twilio/voice/whisper?room=room-a", "leg-a", None)
    board.wait_in("room-a", taken.append)
    assert taken == ["leg-a"] and board.parked == {}

    monkeypatch.setattr(switchboard, "PARK_SECONDS", 0.0)
    board = switchboard.Switchboard()
    board.place("https://example.org/twilio/voice/whisper?room=room-b", "leg-b", None)
    board.wait_in("room-b", taken.append)  # too late: the leg was given up
    assert taken == ["leg-a"] and board.parked == {} and not board.stale


def _sdk_sees(client: object, request: object) -> tuple[str, object]:
    """What the SDK made of one request: the call's status, or Twilio's error code."""
    try:
        return "ok", request(client)  # type: ignore[operator]
    except TwilioRestException as error:
        return "error", (error.status, error.code)


def _story(client: Any, url: str) -> list[tuple[str, object]]:
    """A call placed, then fetched, moved while ringing, completed while ringing, cancelled twice."""
    sid = client.calls.create(to=ANA, from_=PROGRAMME_NUMBER, url=url).sid
    return [
        _sdk_sees(client, request)
        for request in (
            lambda client: client.calls(sid).fetch().status,
            lambda client: client.calls(sid).update(url=url).status,
            lambda client: client.calls(sid).update(status="completed").status,
            lambda client: client.calls(sid).update(status="canceled").status,
            lambda client: client.calls(sid).update(status="canceled").status,
        )
    ]


def test_the_in_process_sdk_client_gets_the_same_answers_and_errors_as_one_over_http(
    fake_twilio_server: ServerThread, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's SDK client skips the web framework for the Calls resource: every
    answer the service can get must still be the one the fake's HTTP app gives."""
    from twilio.rest import Client

    from app.simulator.telephone import in_process_client

    monkeypatch.setattr(fake_twilio, "auth_token", AUTH_TOKEN)
    over_http = Client(ACCOUNT, AUTH_TOKEN)
    over_http.api.base_url = fake_twilio_server.url
    in_process = in_process_client(fake_twilio, ACCOUNT, AUTH_TOKEN)
    wrong_token = in_process_client(fake_twilio, ACCOUNT, "wrong-token")
    url = PUBLIC_BASE_URL + "/twilio/voice/reminder"

    def create(**form: object) -> object:
        return lambda client: client.calls.create(**form).status

    requests = [
        create(to=ANA, from_=PROGRAMME_NUMBER, url=url),
        create(to="617-555-0101", from_=PROGRAMME_NUMBER, url=url),
        create(to=ANA, from_=PROGRAMME_NUMBER, twiml="<Response><Hangup/></Response>"),
        lambda client: client.calls("CA" + "9" * 32).fetch().status,
        lambda client: client.calls("CA" + "9" * 32).update(status="completed").status,
    ]
    for request in requests:
        assert _sdk_sees(in_process, request) == _sdk_sees(over_http, request)
    # a call's own story, told to each client about a call of its own
    stories = [_story(client, url) for client in (in_process, over_http)]
    assert stories[0] == stories[1]
    assert [seen for seen, _ in stories[0]] == ["ok", "error", "error", "ok", "error"]
    fake_twilio.fail_next(429)
    first = _sdk_sees(in_process, create(to=ANA, from_=PROGRAMME_NUMBER, url=url))
    fake_twilio.fail_next(429)
    assert (
        first
        == _sdk_sees(over_http, create(to=ANA, from_=PROGRAMME_NUMBER, url=url))
        == ("error", (429, 20429))
    )
    assert _sdk_sees(wrong_token, create(to=ANA, from_=PROGRAMME_NUMBER, url=url)) == ("error", (401, 20003))


def test_the_telephone_signs_every_request_exactly_as_the_sdk_computes_twilios_signature() -> None:
    from twilio.request_validator import RequestValidator

    phone = Telephone(
        httpx.Client(),
        public_base_url=PUBLIC_BASE_URL,
        auth_token=AUTH_TOKEN,
        programme_number=PROGRAMME_NUMBER,
    )
    sdk = RequestValidator(AUTH_TOKEN)
    forms: list[dict[str, str]] = [
        {},
        {"CallSid": "CA" + "1" * 32, "From": ANA, "To": PROGRAMME_NUMBER, "CallStatus": "ringing"},
        {
            "Digits": "",
            "Zeta": "é & ü",
            "alpha": "1",
            "Alpha": "2",
            "a b": "c=d",
            "Timestamp": "Tue, 24 Nov 2026",
        },
    ]
    for url in (PUBLIC_BASE_URL + "/twilio/voice", PUBLIC_BASE_URL + "/twilio/status?room=room-1&lang=es"):
        for form in forms:
            assert phone.sign(url, form) == sdk.compute_signature(url, form)
            assert sdk.validate(url, form, phone.sign(url, form))


def test_the_in_process_client_encodes_a_form_byte_for_byte_as_urlencode() -> None:
    from urllib.parse import urlencode

    from app.simulator.asgi import form_body

    forms: list[dict[str, str]] = [
        {},
        {"CallSid": "CA" + "1" * 32, "From": ANA, "To": PROGRAMME_NUMBER, "Digits": ""},
        {"Timestamp": "Tue, 24 Nov 2026 03:00:00 +0000", "a b": "c=d&e", "Zoë": "é ü ~_.-", "x": "%2B+/?#"},
    ]
    for form in forms:
        assert form_body(form) == urlencode(form).encode()
