"""Webhooks never break a live call, and nothing unsigned changes anything."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from app.main import create_app
from app.models import Call, CareTeamMessage, ConferenceEvent, KeyedIdFailure
from app.settings import Settings
from app.simulator.telephone import Scripted, Telephone
from app.twilio import forms
from ivr import prompts
from ivr.vocab import AnsweredBy, CallStatus, StepName
from tests.conftest import ANA, AUTH_TOKEN, PUBLIC_BASE_URL, SECRET, SUPPORT, Programme

STEPS = ["", *(f"/{step}" for step in StepName), "/no-such-step"]
# steps that need no database: they answer as usual while it is down
NO_DATABASE = {"/hold", "/message", "/no-such-step"}


def spoken(body: str) -> str:
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return " ".join(" ".join("".join(s.itertext()).split()) for s in root.iter("Say"))


@pytest.mark.parametrize(
    "path", ["/twilio/voice", "/twilio/voice/identify", "/twilio/status", "/twilio/recording"]
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": ""}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}],
    ids=["missing", "empty", "forged"],
)
def test_unsigned_or_forged_requests_get_403_and_change_nothing(
    client: TestClient, programme: Programme, path: str, headers: dict[str, str]
) -> None:
    form = {
        "CallSid": "CAforged",
        "From": ANA,
        "CallStatus": "completed",
        "Digits": "6175550101",
        "RecordingSid": "REforged",
        "RecordingStatus": "completed",
    }
    response = client.post(path, data=form, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": "invalid or missing X-Twilio-Signature"}
    assert response.headers["x-content-type-options"] == "nosniff"  # the app's own headers still
    assert programme.rows(Call) == [] and programme.rows(CareTeamMessage) == []


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/status", "/twilio/conference"])
def test_a_method_twilio_never_uses_is_refused_as_on_any_route(client: TestClient, path: str) -> None:
    response = client.put(path, data={"CallSid": "CAodd"})
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert set(response.headers["allow"].split(", ")) == {"POST", "GET", "HEAD"}


def test_a_signature_made_for_another_url_is_refused(client: TestClient, programme: Programme) -> None:
    form = {"CallSid": "CAother", "From": ANA}
    signature = RequestValidator(AUTH_TOKEN).compute_signature("https://evil.example.org/twilio/voice", form)
    response = client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert programme.rows(Call) == []


def test_signature_is_checked_against_the_public_url_not_the_proxy_host(
    phone: Telephone, client: TestClient
) -> None:
    # the request reaches http://testserver but Twilio signed https://peerline.example.org
    response = phone.post(PUBLIC_BASE_URL + "/twilio/voice", {"CallSid": "CAproxy", "From": ANA})
    assert response.status_code == 200


def test_a_signature_for_the_public_url_with_its_port_written_out_is_accepted_too(
    client: TestClient,
) -> None:
    # one HMAC checks the URL as configured; the SDK's other forms of it are still tried
    form = {"CallSid": "CAport", "From": ANA}
    url = PUBLIC_BASE_URL.replace(".org", ".org:443") + "/twilio/voice"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    response = client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("step", "form"),
    [
        ("/twilio/voice", {}),
        ("/twilio/voice", {"CallSid": "CAx1"}),
        ("/twilio/voice", {"CallSid": "CAx2", "From": "not a number"}),
        ("/twilio/voice/identify", {"CallSid": "CAx3", "Digits": "abc#"}),
        ("/twilio/voice/identify", {"CallSid": "CAunknown", "Digits": ""}),
        ("/twilio/voice/whisper", {"CallSid": "CAchild"}),
        ("/twilio/voice/whisper?room=room-nosuchroom", {"CallSid": "CAchild"}),
        ("/twilio/voice/whisper-answer?room=bad%00room", {"CallSid": "CAchild", "Digits": "9"}),
        (
            "/twilio/voice/stepped-out?room=room-nosuchroom",
            {"CallSid": "CAnever2", "DialCallStatus": "bogus", "DialCallDuration": "-5"},
        ),
        ("/twilio/voice/away?room=room-x", {"CallSid": "CAx7", "Digits": "0"}),
        ("/twilio/voice/partner-gone", {"CallSid": "CAx8"}),
        ("/twilio/voice/message", {"CallSid": "CAx4", "Digits": "x"}),
        ("/twilio/voice/message-done", {"CallSid": "CAx5"}),
        ("/twilio/voice/nonsense", {"CallSid": "CAx6"}),
    ],
)
def test_bad_signed_input_still_gets_valid_twiml_with_words(
    phone: Telephone, step: str, form: dict[str, str]
) -> None:
    response = phone.post(step, form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    assert spoken(response.text) or root.find("Hangup") is not None


def test_an_unknown_step_apologises_and_offers_the_care_team(phone: Telephone) -> None:
    text = spoken(phone.post("/twilio/voice/nonsense", {"CallSid": "CAx"}).text)
    assert prompts.LOST in text and prompts.OFFER_MESSAGE in text


def test_a_removed_number_is_asked_for_its_home_number(
    phone: Telephone, programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    from app.models import Participant

    with programme.session() as s:
        ana = s.get(Participant, ana_and_bea[0])
        assert ana is not None
        ana.status, ana.phone_ciphertext, ana.phone_index = "withdrawn", None, None
        s.commit()
    caller = Scripted(["6175550101#"])
    phone.call(ANA, caller)
    assert caller.heard[:2] == [prompts.GREETING, prompts.ASK_HOME_NUMBER]
    assert prompts.NUMBER_NOT_FOUND in caller.text


def test_when_the_database_is_down_the_caller_hears_an_apology_and_the_care_team_number(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        public_base_url=PUBLIC_BASE_URL,
        twilio_auth_token=AUTH_TOKEN,
        secret_key=SECRET,
        support_phone_number=SUPPORT,
    )
    with TestClient(create_app(settings)) as client:
        phone = Telephone(
            client,
            public_base_url=PUBLIC_BASE_URL,
            target_base_url="http://testserver",
            auth_token=AUTH_TOKEN,
            programme_number="+18005550100",
        )
        for step in STEPS:
            form = {"CallSid": "CAdown", "From": ANA, "Digits": "1", "RecordingSid": "RE1"}
            response = phone.post("/twilio/voice" + step + "?room=room-down", form)
            assert response.status_code == 200
            text = spoken(response.text)
            if step in NO_DATABASE:
                continue  # these steps need no database and carry on
            assert prompts.APOLOGY in text, step
            # the care team's number, as the caller would say it, twice
            assert text.count("eight zero zero, five five five, zero one seven seven") == 2
        for callback in ("/twilio/status", "/twilio/recording", "/twilio/conference"):
            response = phone.post(callback, {"CallSid": "CAdown", "CallStatus": "completed"})
            assert response.status_code == 200 and ET.fromstring(response.text).tag == "Response"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_readyz_answers_when_the_database_does(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}


# ---------------------------------------------------------------- any signed form, any webhook

ODD = [
    "",
    "\x00",
    "CA\x00" + "0" * 32,
    "1\x002",
    "completed\x00",
    "-1",
    "+5",
    "1_000",
    "١٢",
    "9" * 40,
    str(2**63),
    "9" * 5000,
    "x" * 5000,
    "CA" + "f" * 100,
    "https://api.twilio.com/\x00/Recordings/RE1",
    "Tue, 17 Nov 9999 20:00:05 +0000",
    "Tue, 17 Nov 2026 20:00:05 -0000",
    "room-\x00",
    "participant-speech-start",
    "in-progress",
    "machine_end_beep",
    "unknown",
    "6175550101#",
    ANA,
    "anonymous",
    "1",
    "2",
    "0",
    "*",
    "#",
]
odd_values = st.one_of(st.text(max_size=60), st.sampled_from(ODD), st.integers().map(str))
form_keys = st.sampled_from(
    [
        "CallSid",
        "From",
        "To",
        "Digits",
        "ParentCallSid",
        "CallStatus",
        "CallDuration",
        "DialCallStatus",
        "DialCallDuration",
        "AnsweredBy",
        "SequenceNumber",
        "Timestamp",
        "RecordingSid",
        "RecordingUrl",
        "RecordingDuration",
        "RecordingStatus",
        "ConferenceSid",
        "FriendlyName",
        "StatusCallbackEvent",
        "ReasonParticipantLeft",
        "Junk",
    ]
)
WEBHOOKS = [
    *(f"/twilio/voice{step}" for step in STEPS),
    *(f"/twilio/voice{step}?room={{room}}" for step in STEPS if step),
    "/twilio/voice/whisper-answer?room={room}&again=1",
    "/twilio/voice/whisper?room={room}&person=1",
    "/twilio/voice/reminder?person=1",
    "/twilio/status",
    "/twilio/status?room={room}",
    "/twilio/conference",
    "/twilio/recording",
]


def _room(phone: Telephone, programme: Programme) -> str:
    """A call of Ana's in its room (the same one for every example)."""
    phone.post("/twilio/voice", {"CallSid": "CA" + "a" * 32, "From": ANA, "CallStatus": "ringing"})
    room = programme.call("CA" + "a" * 32).room
    assert room is not None
    return room


@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(WEBHOOKS), form=st.dictionaries(form_keys, odd_values, max_size=10))
def test_any_signed_form_at_any_webhook_gets_twiml_and_never_the_apology(
    phone: Telephone, programme: Programme, ana_and_bea: tuple[int, int, int], path: str, form: dict[str, str]
) -> None:
    url = path.format(room=_room(phone, programme))
    response = phone.post(url, form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert ET.fromstring(response.text).tag == "Response"
    # odd values are set aside where they come in: nothing inside fails on them
    assert prompts.APOLOGY not in spoken(response.text)


T = "Tue, 17 Nov 2026 20:00:05 +0000"


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.dictionaries(
        st.sampled_from(["CallDuration", "SequenceNumber", "From", "To", "Junk", "AnsweredBy", "Digits"]),
        odd_values,
        max_size=6,
    ),
    n=st.integers(0, 10**6),
)
def test_odd_values_beside_valid_ones_drop_nothing_valid(
    phone: Telephone, programme: Programme, ana_and_bea: tuple[int, int, int], junk: dict[str, str], n: int
) -> None:
    room = _room(phone, programme)
    call_sid, recording_sid = f"CA{n:032x}", f"RE{n:032x}"

    phone.post("/twilio/status", {**junk, "CallSid": call_sid, "CallStatus": "completed", "Timestamp": T})
    row = programme.call(call_sid)
    assert row.status == "completed" and row.ended_at == datetime(2026, 11, 17, 20, 0, 5, tzinfo=UTC)

    event = {"ConferenceSid": f"CF{n:032x}", "FriendlyName": room, "StatusCallbackEvent": "participant-join"}
    phone.post("/twilio/conference", {**junk, **event, "CallSid": call_sid, "Timestamp": T})
    kept = [e for e in programme.rows(ConferenceEvent) if e.conference_sid == event["ConferenceSid"]]
    assert [(e.participant_sid, e.event) for e in kept] == [(call_sid, "participant-join")]

    recording = {"RecordingSid": recording_sid, "RecordingStatus": "completed", "RecordingDuration": "12"}
    phone.post("/twilio/recording", {**junk, **recording, "CallSid": call_sid})
    (message,) = [m for m in programme.rows(CareTeamMessage) if m.recording_sid == recording_sid]
    assert message.duration_seconds == 12


def test_no_keyed_failure_is_recorded_for_a_correct_number(
    phone: Telephone, programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    phone.call("anonymous", Scripted(["6175550101#"]), Scripted(answers=False))
    assert programme.rows(KeyedIdFailure) == []


def test_a_number_configured_for_get_by_mistake_still_answers(
    client: TestClient, programme: Programme
) -> None:
    from urllib.parse import urlencode

    query = urlencode({"CallSid": "CAget", "From": "anonymous"})
    url = f"{PUBLIC_BASE_URL}/twilio/voice?{query}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    response = client.get(f"/twilio/voice?{query}", headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    assert prompts.ASK_HOME_NUMBER in spoken(response.text)
    assert client.get(f"/twilio/voice?{query}", headers={"X-Twilio-Signature": "forged"}).status_code == 403
    assert [c.twilio_call_sid for c in programme.rows(Call)] == ["CAget"]


# ---------------------------------------------------------------- Twilio's form, read once


@pytest.mark.parametrize(
    ("form", "field", "expected"),
    [
        pytest.param({"CallSid": " CA123 "}, "call_sid", "CA123", id="a SID is trimmed"),
        pytest.param({"CallSid": ""}, "call_sid", None, id="an empty SID is none"),
        pytest.param({"CallSid": "CA 1; drop"}, "call_sid", None, id="a SID with odd characters is none"),
        pytest.param(
            {"CallSid": "CA" + "0" * 63}, "call_sid", None, id="a SID too long for its column is none"
        ),
        pytest.param(
            {"ParentCallSid": "CAparent"}, "parent_call_sid", "CAparent", id="the parent SID is read"
        ),
        pytest.param({"Digits": " 6175550101#x"}, "digits", "6175550101#", id="digits keep only keypad keys"),
        pytest.param({"Digits": "1" * 40}, "digits", "1" * 32, id="digits stop at 32 keys"),
        pytest.param({"From": " anonymous "}, "from_", "anonymous", id="a withheld caller ID stays a word"),
        pytest.param({"From": "1" * 200}, "from_", "", id="a caller ID too long to be one is empty"),
        pytest.param(
            {"CallStatus": "In-Progress"}, "call_status", CallStatus.IN_PROGRESS, id="a status is a word"
        ),
        pytest.param({"CallStatus": "bogus"}, "call_status", None, id="an unknown status is none"),
        pytest.param(
            {"DialCallStatus": "no-answer"},
            "dial_call_status",
            CallStatus.NO_ANSWER,
            id="a dial status is read",
        ),
        pytest.param({"DialCallDuration": "300"}, "dial_call_duration", 300, id="a duration is a number"),
        pytest.param(
            {"DialCallDuration": "-5"}, "dial_call_duration", None, id="a negative duration is none"
        ),
        pytest.param(
            {"DialCallDuration": "99999999999"},
            "dial_call_duration",
            None,
            id="a duration past a day is none",
        ),
        pytest.param(
            {"DialCallDuration": "5s"}, "dial_call_duration", None, id="a duration with words is none"
        ),
        pytest.param(
            {"AnsweredBy": "machine_end_beep"},
            "answered_by",
            AnsweredBy.MACHINE_END_BEEP,
            id="machine detection",
        ),
        pytest.param({"AnsweredBy": "robot"}, "answered_by", None, id="an unknown detection result is none"),
    ],
)
def test_a_voice_request_is_read_once_into_typed_values(
    form: dict[str, str], field: str, expected: object
) -> None:
    assert getattr(forms.voice_request(form), field) == expected


@pytest.mark.parametrize(
    ("form", "field", "expected"),
    [
        pytest.param({"SequenceNumber": "3"}, "sequence_number", 3, id="a sequence number is a number"),
        pytest.param(
            {"SequenceNumber": str(2**40)}, "sequence_number", None, id="a sequence past its column"
        ),
        pytest.param({"CallDuration": "340"}, "call_duration", 340, id="the call's duration"),
        pytest.param(
            {"Timestamp": "Tue, 17 Nov 2026 20:00:05 +0000"},
            "timestamp",
            datetime(2026, 11, 17, 20, 0, 5, tzinfo=UTC),
            id="Twilio's time is an aware datetime",
        ),
        pytest.param(
            {"Timestamp": "Tue, 17 Nov 2026 20:00:05 -0000"},
            "timestamp",
            None,
            id="a time without a zone is none",
        ),
        pytest.param({"Timestamp": "yesterday"}, "timestamp", None, id="a time that is not one is none"),
    ],
)
def test_a_status_callback_is_read_once_into_typed_values(
    form: dict[str, str], field: str, expected: object
) -> None:
    assert getattr(forms.status_callback(form), field) == expected


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        pytest.param({"CallSid": "CA1"}, None, id="no recording SID, no recording"),
        pytest.param(
            {
                "RecordingSid": "RE1",
                "CallSid": "CA1",
                "RecordingUrl": "https://x.example/RE1",
                "RecordingDuration": "9",
            },
            forms.Recording("RE1", "CA1", "https://x.example/RE1", 9, completed=False),
            id="the Record action names no status: only the status callback says complete",
        ),
        pytest.param(
            {"RecordingSid": "RE1", "RecordingStatus": "completed"},
            forms.Recording("RE1", None, None, None, completed=True),
            id="the status callback says completed",
        ),
        pytest.param(
            {"RecordingSid": "RE1", "RecordingStatus": "in-progress"},
            forms.Recording("RE1", None, None, None, completed=False),
            id="a recording in progress is not a message yet",
        ),
        pytest.param(
            {"RecordingSid": "RE1", "RecordingStatus": "bogus"},
            forms.Recording("RE1", None, None, None, completed=False),
            id="a status we do not know is not completed",
        ),
        pytest.param(
            {
                "RecordingSid": "RE1",
                "RecordingUrl": "https://x.example/" + "a" * 600,
                "RecordingStatus": "completed",
            },
            forms.Recording("RE1", None, None, None, completed=True),
            id="a URL too long for its column is none",
        ),
        pytest.param(
            {"RecordingSid": "RE1", "RecordingStatus": "absent"},
            forms.Recording("RE1", None, None, None, completed=False),
            id="an absent recording is no message",
        ),
        pytest.param(
            {"RecordingSid": "RE1", "RecordingStatus": "failed", "RecordingUrl": "https://x/\x00"},
            forms.Recording("RE1", None, None, None, completed=False),
            id="a failed recording is no message, and a URL with NUL is none",
        ),
    ],
)
def test_a_recording_is_read_once_into_typed_values(
    form: dict[str, str], expected: forms.Recording | None
) -> None:
    assert forms.recording(form) == expected


def test_a_value_set_aside_is_logged_by_field_name_never_by_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app.twilio.forms"):
        request = forms.voice_request({"From": ANA * 20, "DialCallDuration": ANA, "CallSid": ANA})
    assert (request.from_, request.dial_call_duration, request.call_sid) == ("", None, None)
    assert {r.getMessage() for r in caplog.records} == {
        "ignored Twilio's From: too long",
        "ignored Twilio's DialCallDuration: out of range",
        "ignored Twilio's CallSid: not a SID",
    }
