"""Webhooks never break a live call, and nothing unsigned changes anything."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from app.main import create_app
from app.models import Call, CareTeamMessage, KeyedIdFailure
from app.settings import Settings
from app.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import ANA, AUTH_TOKEN, PUBLIC_BASE_URL, SECRET, SUPPORT, Programme

STEPS = [
    "",
    "/identify",
    "/whisper",
    "/whisper-answer",
    "/dial-done",
    "/message",
    "/message-done",
    "/no-such-step",
]


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
    assert programme.rows(Call) == [] and programme.rows(CareTeamMessage) == []


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


@pytest.mark.parametrize(
    ("step", "form"),
    [
        ("/twilio/voice", {}),
        ("/twilio/voice", {"CallSid": "CAx1"}),
        ("/twilio/voice", {"CallSid": "CAx2", "From": "not a number"}),
        ("/twilio/voice/identify", {"CallSid": "CAx3", "Digits": "abc#"}),
        ("/twilio/voice/identify", {"CallSid": "CAunknown", "Digits": ""}),
        ("/twilio/voice/whisper", {"CallSid": "CAchild"}),
        ("/twilio/voice/whisper-answer", {"CallSid": "CAchild", "ParentCallSid": "CAnever", "Digits": "9"}),
        (
            "/twilio/voice/dial-done",
            {"CallSid": "CAnever2", "DialCallStatus": "bogus", "DialCallDuration": "-5"},
        ),
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
    assert caller.heard[0] == prompts.ASK_HOME_NUMBER
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
            form = {
                "CallSid": "CAdown",
                "ParentCallSid": "CAparent",
                "From": ANA,
                "Digits": "1",
                "RecordingSid": "RE1",
            }
            response = phone.post("/twilio/voice" + step, form)
            assert response.status_code == 200
            text = spoken(response.text)
            if step in ("/message", "/no-such-step"):
                continue  # these steps need no database and carry on
            assert prompts.APOLOGY in text
            assert "8, 0, 0, 5, 5, 5, 0, 1, 7, 7" in text
        for callback in ("/twilio/status", "/twilio/recording"):
            response = phone.post(callback, {"CallSid": "CAdown", "CallStatus": "completed"})
            assert response.status_code == 200 and ET.fromstring(response.text).tag == "Response"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_readyz_answers_when_the_database_does(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}


form_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "1",
            "2",
            "#",
            "*",
            "6175550101#",
            ANA,
            "anonymous",
            "completed",
            "no-answer",
            "busy",
            "in-progress",
            "-1",
            "99999999999",
            "CAxyz",
            "",
        ]
    ),
)
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
        "SequenceNumber",
        "Timestamp",
        "RecordingSid",
        "RecordingUrl",
        "RecordingDuration",
        "RecordingStatus",
        "Junk",
    ]
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from([f"/twilio/voice{s}" for s in STEPS] + ["/twilio/status", "/twilio/recording"]),
    form=st.dictionaries(form_keys, form_values, max_size=10),
)
def test_any_signed_form_at_any_step_gets_200_and_twiml(
    phone: Telephone, ana_and_bea: tuple[int, int, int], path: str, form: dict[str, str]
) -> None:
    form = {k: v.replace("\x00", "") for k, v in form.items()}
    response = phone.post(path, form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert ET.fromstring(response.text).tag == "Response"


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
