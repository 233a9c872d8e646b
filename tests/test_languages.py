"""Prompts people understand: every prompt in English and Spanish, each party in their own
language on the same call, the bilingual opening, numbers and times as people say them,
the repeat key, and the one rule for which languages a participant may have."""

from __future__ import annotations

import dataclasses
import re
import string
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import ivr.flow as flow
from app import settings as settings_module
from app.cli import cli
from app.models import Participant
from app.services import notices, participants
from app.simulator.telephone import Scripted, Telephone
from ivr import prompts
from ivr.flow import Bridge, Caller, Line, Partner, Person, Step, Urls
from ivr.prompts import CATALOGUE, MAX_WORDS, Prompt
from ivr.speech import VOICES, spoken_number, spoken_time
from ivr.vocab import AnsweredBy, Language, Leg, Place, StepName
from tests.conftest import ANA, Programme, Staff

EN, ES = Language.EN, Language.ES
BASE = "https://peerline.example.org"
NOW = datetime(2026, 11, 18, 3, 0, tzinfo=UTC)
LINE = Line(Urls(BASE), "+18005550100", NOW, support_number="+16175550100")
ROOM = "room-0123456789abcdef01234567"
Pairing = tuple[int, int, int]


@pytest.fixture(autouse=True)
def _fresh_notice_cache() -> Iterator[None]:
    # the call path caches the notice per process: no test may see another's
    notices.forget()
    yield
    notices.forget()


# ---------------------------------------------------------------- the catalogue


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("prompt", list(Prompt))
def test_every_prompt_exists_in_every_language_with_the_same_blanks(prompt: Prompt) -> None:
    texts = CATALOGUE[prompt]
    assert set(texts) == set(Language), f"{prompt} is missing a language"
    assert all(text.strip() for text in texts.values())
    assert _fields(texts[EN]) == _fields(texts[ES]), f"{prompt}: the languages need the same values"


# the longest value each blank takes on a real call, in each language
LONGEST = {
    EN: {
        "name": "Ana María",
        "count": "12",
        "when": "on Wednesday after 11:45 in the evening",
        "number": "six one seven, five five five, zero one zero zero",
    },
    ES: {
        "name": "Ana María",
        "count": "12",
        "when": "el miércoles después de las once y cuarenta y cinco de la noche",
        "number": "seis uno siete, cinco cinco cinco, cero uno cero cero",
    },
}


@pytest.mark.parametrize(("prompt", "language"), [(p, lang) for p in Prompt for lang in Language])
def test_no_prompt_is_longer_than_a_listener_can_keep(prompt: Prompt, language: Language) -> None:
    blanks = _fields(CATALOGUE[prompt][language])
    text = prompts.text(prompt, language, **{k: v for k, v in LONGEST[language].items() if k in blanks})
    # a phone number counts as its three groups: each is one thing to hold on to
    extra = len(LONGEST[language]["number"].split()) - 3 if "number" in blanks else 0
    words = len(text.split()) - extra
    assert words <= MAX_WORDS, f"{prompt} in {language}: {words} words"


def test_spanish_is_spoken_with_usted_and_the_opening_offers_spanish_by_2() -> None:
    assert prompts.text(Prompt.LANGUAGE_CHOICE, ES) == "Para español, oprima 2."
    assert prompts.LANGUAGE_KEYS[ES] == "2"
    assert prompts.text(Prompt.WHISPER, ES) == "Su compañero de Peerline le está llamando."
    assert prompts.text(Prompt.WHISPER_ASK, ES) == "Para hablar ahora, oprima 1."
    # the informal "tú" forms have no place on a service line
    informal = re.compile(r"\b(tu|tú|puedes|oprime|llama|marca|quieres)\b", re.IGNORECASE)
    for texts in CATALOGUE.values():
        assert not informal.search(texts[ES]), texts[ES]


# ---------------------------------------------------------------- numbers and times


@pytest.mark.parametrize(
    ("number", "region", "language", "spoken"),
    [
        ("+16175550100", "US", EN, "six one seven, five five five, zero one zero zero"),
        ("+16175550100", "US", ES, "seis uno siete, cinco cinco cinco, cero uno cero cero"),
        ("+16175550100", "MX", EN, "plus one, six one seven, five five five, zero one zero zero"),
        ("+16175550100", "MX", ES, "más uno, seis uno siete, cinco cinco cinco, cero uno cero cero"),
        (
            "+442079460000",
            "US",
            ES,
            "más cuatro cuatro, dos cero, siete nueve cuatro seis, cero cero cero cero",
        ),
    ],
)
def test_the_care_team_number_is_grouped_as_people_say_it(
    number: str, region: str, language: Language, spoken: str
) -> None:
    assert spoken_number(number, region, language) == spoken


TODAY = datetime(2026, 11, 17, 22, 0)  # a Tuesday evening


@pytest.mark.parametrize(
    ("moment", "language", "spoken"),
    [
        (datetime(2026, 11, 18, 9, 0), EN, "tomorrow after 9 in the morning"),
        (datetime(2026, 11, 18, 9, 0), ES, "mañana después de las nueve de la mañana"),
        (datetime(2026, 11, 17, 23, 0), ES, "después de las once de la noche"),
        (datetime(2026, 11, 17, 22, 30), EN, "after 10:30 in the evening"),
        (datetime(2026, 11, 18, 13, 30), ES, "mañana después de la una y media de la tarde"),
        (datetime(2026, 11, 18, 7, 15), ES, "mañana después de las siete y cuarto de la mañana"),
        (datetime(2026, 11, 18, 19, 45), ES, "mañana después de las siete y cuarenta y cinco de la tarde"),
        (datetime(2026, 11, 18, 12, 0), EN, "tomorrow after 12 noon"),
        (datetime(2026, 11, 18, 12, 0), ES, "mañana después del mediodía"),
        (datetime(2026, 11, 20, 8, 0), EN, "on Friday after 8 in the morning"),
        (datetime(2026, 11, 20, 8, 0), ES, "el viernes después de las ocho de la mañana"),
        (datetime(2026, 11, 18, 0, 30), ES, "mañana después de las doce y media de la madrugada"),
    ],
)
def test_times_are_said_as_people_say_them(moment: datetime, language: Language, spoken: str) -> None:
    assert spoken_time(moment, TODAY, language) == spoken


# ---------------------------------------------------------------- each step, each language

ANA_ES = Person(1, "Ana", "America/New_York", language=ES)
BEA_EN = Partner(2, "Bea", "America/Chicago")
PAIRED_ES = Caller(ANA_ES, 10, BEA_EN)
BOTH_IN = Bridge(ROOM, accepted=True, caller_place=Place.ROOM, partner_place=Place.ROOM, partner_placed=True)
ES_LINE = dataclasses.replace(LINE, language=ES)


def _says(step: Step) -> list[ET.Element]:
    return list(ET.fromstring(str(step)).iter("Say"))


def _text(say: ET.Element) -> str:
    return " ".join("".join(say.itertext()).split())


ES_STEPS: list[Callable[[], Step]] = [
    lambda: flow.connect(PAIRED_ES, LINE, room=ROOM),
    lambda: flow.connect(Caller(ANA_ES), LINE, room=ROOM),
    lambda: flow.identify(None, ES_LINE, room=ROOM, tries_before=0, locked_out=False),
    lambda: flow.identify(None, ES_LINE, room=ROOM, tries_before=2, locked_out=False),
    lambda: flow.hold(ES_LINE),
    lambda: flow.whisper(BOTH_IN, AnsweredBy.HUMAN, ES_LINE),
    lambda: flow.whisper(BOTH_IN, AnsweredBy.UNKNOWN, ES_LINE),
    lambda: flow.whisper_answer("1", BOTH_IN, ES_LINE),
    lambda: flow.whisper_answer("5", BOTH_IN, ES_LINE),
    lambda: flow.stepped_out(
        Leg.CALLER, BOTH_IN, dataclasses.replace(ES_LINE, nurse_line="+16175550177"), hung_up=False
    ),
    lambda: flow.away("0", Leg.CALLER, BOTH_IN, dataclasses.replace(ES_LINE, nurse_line="+16175550177")),
    lambda: flow.away("", Leg.CALLER, BOTH_IN, ES_LINE),
    lambda: flow.partner_away(Leg.CALLER, BOTH_IN, ES_LINE),
    lambda: flow.partner_gone(Leg.CALLER, ES_LINE),
    lambda: flow.partner_unreached(ES_LINE),
    lambda: flow.message_menu("1", ES_LINE),
    lambda: flow.message_done(ES_LINE, leg=Leg.CALLER, bridge=BOTH_IN),
    lambda: flow.reminder(ANA_ES, AnsweredBy.HUMAN, LINE),
    lambda: flow.reminder(ANA_ES, AnsweredBy.MACHINE_START, LINE),
    lambda: flow.reminder_answer("2", PAIRED_ES, ES_LINE, room=ROOM),
    lambda: flow.lost(ES_LINE),
    lambda: flow.apology("+16175550100", "US", ES),
]
SPANISH = {text for texts in CATALOGUE.values() for text in [texts[ES]]}


@pytest.mark.parametrize("step", ES_STEPS)
def test_every_say_of_every_step_carries_the_listeners_voice_and_language(step: Callable[[], Step]) -> None:
    says = _says(step())
    assert says
    for say in says:
        assert (say.get("voice"), say.get("language")) == (VOICES[ES].name, VOICES[ES].locale), _text(say)
        assert _text(say) not in {texts[EN] for texts in CATALOGUE.values()}


@pytest.mark.parametrize("step", ES_STEPS)
def test_every_url_a_spanish_step_writes_keeps_its_language(step: Callable[[], Step]) -> None:
    root = ET.fromstring(str(step()))
    for element in root.iter():
        for url in [v for k, v in element.attrib.items() if k in ("action", "waitUrl")] + (
            [element.text or ""] if element.tag == "Redirect" else []
        ):
            if "/twilio/voice/" in url:
                assert url.endswith("lang=es"), url


# ---------------------------------------------------------------- the repeat key


REPEATS: list[tuple[str, Callable[[], Step], Prompt]] = [
    (
        "the home number",
        lambda: flow.identify(None, LINE, room=ROOM, tries_before=0, locked_out=False, digits="9#"),
        Prompt.ASK_HOME_NUMBER,
    ),
    (
        "the home number, after a wrong one",
        lambda: flow.identify(None, LINE, room=ROOM, tries_before=1, locked_out=False, digits="9#"),
        Prompt.ASK_HOME_NUMBER_AGAIN,
    ),
    ("the whisper", lambda: flow.whisper_answer("9", BOTH_IN, LINE), Prompt.WHISPER_ASK),
    (
        "the whisper, second ask",
        lambda: flow.whisper_answer("9", BOTH_IN, LINE, again=True),
        Prompt.WHISPER_ASK,
    ),
    (
        "the partner's check for a person",
        lambda: flow.whisper(BOTH_IN, AnsweredBy.UNKNOWN, LINE, person=True, digits="9"),
        Prompt.CHECK_ASK,
    ),
    ("the stepped-out menu", lambda: flow.away("9", Leg.CALLER, BOTH_IN, LINE), Prompt.MENU_MESSAGE),
    ("the message offer", lambda: flow.message_menu("9", LINE), Prompt.OFFER_MESSAGE),
    (
        "the reminder",
        lambda: flow.reminder_answer("9", Caller(Person(1, "Ana", "America/New_York")), LINE, room=ROOM),
        Prompt.REMINDER_ASK,
    ),
    (
        "the reminder's check for a person",
        lambda: flow.reminder(
            Person(1, "Ana", "America/New_York"), AnsweredBy.UNKNOWN, LINE, confirmed=True, digits="9"
        ),
        Prompt.REMINDER_CHECK_ASK,
    ),
]


@pytest.mark.parametrize(("where", "step", "question"), REPEATS, ids=[r[0] for r in REPEATS])
def test_nine_repeats_the_last_question_at_every_menu(
    where: str, step: Callable[[], Step], question: Prompt
) -> None:
    done = step()
    gathers = list(ET.fromstring(str(done)).iter("Gather"))
    assert gathers, f"{where}: 9 must ask again"
    assert _text(next(iter(gathers[0].iter("Say")))) == prompts.text(question, EN)
    # asking again is no wrong number, no decline, no step forward
    assert not any(isinstance(e, flow.WrongNumber | flow.PartnerAccepted | flow.Moved) for e in done.effects)


def test_star_is_never_the_repeat_key() -> None:
    assert prompts.REPEAT_KEY == "9"
    assert "9" in prompts.text(Prompt.REPEAT_HINT, ES) and "9" in prompts.REPEAT_HINT


# ---------------------------------------------------------------- whole calls


def _speaks(programme: Programme, person_id: int, language: str) -> None:
    with programme.session() as s:
        person = s.get(Participant, person_id)
        assert person is not None
        participants.update_details(s, person, language=language)
        s.commit()


def _voices(docs: list[ET.Element]) -> set[tuple[str | None, str | None]]:
    return {(say.get("voice"), say.get("language")) for doc in docs for say in doc.iter("Say")}


def test_a_spanish_caller_and_an_english_partner_each_hear_their_own_language_end_to_end(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, _bea_id, _ = ana_and_bea
    _speaks(programme, ana_id, "es")
    ana = Scripted(talk_seconds=120)
    bea = Scripted(["1"])

    record = phone.call(ANA, ana, bea)

    assert ana.heard[:5] == [
        "Hola, Ana. Le habla Peerline.",
        prompts.text(Prompt.NOTICE, ES),
        prompts.text(Prompt.CONNECTING, ES),
        prompts.text(Prompt.STAR_HINT, ES),
        prompts.text(Prompt.REPEAT_HINT, ES),
    ]
    # her hold line, if the room kept her waiting, is in her language too
    assert prompts.text(Prompt.HOLD, ES) in ana.heard or prompts.HOLD not in ana.heard
    assert prompts.text(Prompt.PARTNER_HUNG_UP, ES) in ana.heard  # told by the REST redirect
    assert bea.heard[:3] == [prompts.WHISPER, prompts.NOTICE, prompts.WHISPER_ASK]
    assert prompts.HOLD not in ana.heard and prompts.text(Prompt.WHISPER, ES) not in bea.heard
    assert _voices(record.responses) == {(VOICES[ES].name, VOICES[ES].locale)}
    assert _voices(record.partner_responses) == {(VOICES[EN].name, VOICES[EN].locale)}
    call = programme.call(record.sid)
    assert (call.caller_language, call.partner_language, call.outcome) == ("es", "en", "contact")


def test_an_unknown_caller_presses_2_for_spanish_and_keeps_it_for_the_whole_call(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["2", "6175550101#"], talk_seconds=90)
    record = phone.call("anonymous", ana, Scripted(["1"]))
    assert ana.heard[:3] == [prompts.GREETING, prompts.ASK_HOME_NUMBER, "Para español, oprima 2."]
    after = (
        ana.heard[ana.heard.index("Para español, oprima 2.", 3) + 1 :]
        if ana.heard.count("Para español, oprima 2.") > 1
        else ana.heard[3:]
    )
    assert prompts.text(Prompt.ASK_HOME_NUMBER, ES) in after
    assert "Hola, Ana. Le habla Peerline." in after
    english = {texts[EN] for texts in CATALOGUE.values()}
    assert not [s for s in after if s in english], after
    call = programme.call(record.sid)
    assert call.caller_language == "es" and call.outcome == "contact"


def test_the_spoken_notice_is_the_active_version_in_each_listeners_language(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, clock: Any
) -> None:
    ana_id, _, _ = ana_and_bea
    _speaks(programme, ana_id, "es")
    texts = {
        "en": "Talk to your doctor before you change a medicine.",
        "es": "Hable con su médico antes de cambiar una medicina.",
    }
    with programme.session() as s:
        notices.create_draft(s, version="2027-01", texts=texts, actor="admin@clinic.example.org", now=clock())
        notices.activate(s, "2027-01", actor="admin@clinic.example.org", now=clock())
        s.commit()

    ana, bea = Scripted(talk_seconds=70), Scripted(["1"])
    record = phone.call(ANA, ana, bea)

    assert ana.heard[1] == texts["es"] and bea.heard[1] == texts["en"]
    call = programme.call(record.sid)
    assert (call.notice_version, call.partner_notice_version) == ("2027-01", "2027-01")


def test_a_notice_with_a_language_missing_cannot_be_activated(programme: Programme, clock: Any) -> None:
    from app.services.errors import Conflict, Invalid

    with programme.session() as s:
        notices.create_draft(s, version="draft", texts={"en": "English only."}, actor="a", now=clock())
        with pytest.raises(Invalid, match="missing: es"):
            notices.activate(s, "draft", actor="a", now=clock())
        notices.create_draft(s, version="v2", texts={"en": "E.", "es": "S."}, actor="a", now=clock())
        notices.activate(s, "v2", actor="a", now=clock())
        with pytest.raises(Conflict):
            notices.activate(s, "v2", actor="a", now=clock())
        assert [p.version for p in notices.history(s)] == ["v2"]


# ---------------------------------------------------------------- the one rule for languages


def test_the_api_refuses_a_language_without_prompts_naming_the_supported_ones(
    client: TestClient, staff: Staff
) -> None:
    body = {"name": "Ana", "phone": "(617) 555-0101", "timezone": "America/New_York", "language": "fr"}
    response = client.post("/api/v1/participants", json=body, headers=staff["admin"])
    assert response.status_code == 422
    text = response.text
    assert "language" in text and "'en'" in text and "'es'" in text
    ok = client.post("/api/v1/participants", json={**body, "language": "es"}, headers=staff["admin"])
    assert ok.status_code == 201, ok.text
    assert ok.json()["language"] == "es"
    patched = client.patch(
        f"/api/v1/participants/{ok.json()['id']}", json={"language": "de"}, headers=staff["admin"]
    )
    assert patched.status_code == 422 and "language" in patched.text


def test_the_service_refuses_a_language_for_every_caller_of_it(programme: Programme, clock: Any) -> None:
    from app.services.errors import Invalid

    with programme.session() as s, pytest.raises(Invalid, match=r"language: language must be one of: en, es"):
        participants.enrol(
            s,
            programme.vault,
            name="X",
            phone="617 555 0103",
            timezone="America/New_York",
            quiet_hours=None,
            language="fr",
            now=clock(),
        )


def test_the_console_shows_the_refusal_on_the_language_field(app: FastAPI, staff: Staff) -> None:
    from tests.test_console_audit import Console, _csrf

    console = Console(app)
    console.sign_in("staff")
    form = console.http.get("/console/participants/new")
    response = console.http.post(
        "/console/participants",
        data={
            "csrf_token": _csrf(form.text),
            "name": "Ana",
            "phone": "(617) 555-0101",
            "timezone": "America/New_York",
            "language": "fr",
        },
    )
    assert response.status_code in (400, 422)
    assert 'id="language-error"' in response.text and "en, es" in response.text


def test_the_cli_refuses_a_language_with_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-cli-test-secret-key")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    settings_module.get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    args = ["participant", "add", "--name", "X", "--phone", "617 555 0101"]
    refused = runner.invoke(cli, [*args, "--language", "fr"])
    assert refused.exit_code == 2
    assert len(refused.output.strip().splitlines()) == 1 and "en, es" in refused.output
    assert runner.invoke(cli, [*args, "--language", "es"]).exit_code == 0
    settings_module.get_settings.cache_clear()


def test_language_steps_ask_for_nothing_by_number() -> None:
    # the language goes in URLs as a code, never with a number
    url = dataclasses.replace(LINE, language=ES).step(StepName.IDENTIFY)
    assert url == f"{BASE}/twilio/voice/identify?lang=es"


def test_a_name_that_ends_in_a_full_stop_is_not_followed_by_a_second_one() -> None:
    assert prompts.text(prompts.Prompt.GREETING_NAMED, Language.EN, name="May C.") == (
        "Hello, May C. This is Peerline."
    )
