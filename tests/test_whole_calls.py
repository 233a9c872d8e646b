"""Whole calls, driven through the same signed requests Twilio sends."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

from app.models import CareTeamMessage, KeyedIdFailure, Pair
from app.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import ANA, BEA, PROGRAMME_NUMBER, STRANGER, FakeClock, Programme

Pairing = tuple[int, int, int]
DIGITS_RUN = re.compile(r"\d[\d\s,().-]{6,}\d")


def assert_no_number_spoken(*parties: Scripted) -> None:
    for party in parties:
        for sentence in party.heard:
            assert not DIGITS_RUN.search(sentence), f"a number was spoken: {sentence!r}"


def test_known_caller_is_bridged_to_partner_and_a_long_talk_is_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, bea_id, pair_id = ana_and_bea
    ana = Scripted(talk_seconds=300)
    bea = Scripted(["1"])

    record = phone.call(ANA, ana, bea)

    assert "Hello, Ana" in ana.text
    assert prompts.NOTICE in ana.text
    assert prompts.STAR_HINT in ana.text
    assert prompts.CALL_ENDED in ana.text
    assert prompts.WHISPER in bea.text and prompts.NOTICE in bea.text
    (dial,) = record.verbs("Dial")
    assert dial.get("callerId") == PROGRAMME_NUMBER
    assert dial.get("hangupOnStar") == "true" and dial.get("timeout") == "30"
    assert dial.get("action") == "https://peerline.example.org/twilio/voice/dial-done"
    (number,) = dial.findall("Number")
    assert number.text == BEA
    assert number.get("url") == "https://peerline.example.org/twilio/voice/whisper"
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"
    assert_no_number_spoken(ana, bea)

    call = programme.call(record.sid)
    assert (call.kind, call.initiator_id, call.callee_id, call.pair_id) == ("peer", ana_id, bea_id, pair_id)
    assert call.outcome == "contact" and call.duration_seconds == 300
    assert call.accepted_at is not None and call.notice_version == prompts.NOTICE_VERSION
    assert call.ended_at is not None
    assert programme.get(Pair, pair_id).last_contact_at == call.accepted_at


def test_caller_with_withheld_number_is_identified_by_keyed_home_number(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, _, pair_id = ana_and_bea
    ana = Scripted(["6175550101#"], talk_seconds=90)

    record = phone.call("anonymous", ana, Scripted(["1"]))

    assert ana.heard[0] == prompts.ASK_HOME_NUMBER
    assert "Hello, Ana" in ana.text
    call = programme.call(record.sid)
    assert (call.initiator_id, call.pair_id, call.outcome) == (ana_id, pair_id, "contact")


def test_a_caller_from_an_unknown_phone_keys_the_number_with_dashes_and_spaces_ignored(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["617 555 0101#"])
    record = phone.call(STRANGER, ana, Scripted(answers=False))
    assert programme.call(record.sid).initiator_id == ana_and_bea[0]


def test_three_wrong_home_numbers_end_in_a_polite_goodbye(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    caller = Scripted(["6175550188#", "6175550177#", "12#"])

    record = phone.call(STRANGER, caller)

    assert caller.text.count(prompts.NUMBER_NOT_FOUND) == 2
    assert caller.heard[-1] == prompts.NUMBER_GIVE_UP
    assert not record.verbs("Dial")
    call = programme.call(record.sid)
    assert call.initiator_id is None and call.id_tries == 3
    assert len(programme.rows(KeyedIdFailure)) == 3


def test_six_wrong_numbers_within_an_hour_lock_that_caller_id_out(
    phone: Telephone, programme: Programme, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    for _ in range(2):
        phone.call(STRANGER, Scripted(["6175550188#"] * 3))
        clock.advance(minutes=5)

    locked = Scripted(["6175550101#"])
    phone.call(STRANGER, locked)
    assert locked.heard == [prompts.LOCKED_OUT]

    clock.advance(hours=1)
    freed = Scripted(["6175550101#"])
    phone.call(STRANGER, freed)
    assert "Hello, Ana" in freed.text


def test_silence_at_the_number_prompt_repeats_it_once_then_says_goodbye(
    phone: Telephone, ana_and_bea: Pairing
) -> None:
    caller = Scripted([None, None])
    phone.call("anonymous", caller)
    assert caller.heard == [prompts.ASK_HOME_NUMBER, prompts.ASK_HOME_NUMBER_AGAIN, prompts.NO_ANSWER_GOODBYE]


@pytest.mark.parametrize(
    ("partner", "outcome"),
    [
        (Scripted(["2"]), "declined"),
        (Scripted([None, None]), "declined"),
        (Scripted(["h"]), "declined"),
        (Scripted(answers=False), "no_answer"),
    ],
    ids=["presses-2", "stays-silent", "hangs-up-on-whisper", "does-not-answer"],
)
def test_partner_who_does_not_press_1_is_not_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, partner: Scripted, outcome: str
) -> None:
    ana = Scripted(talk_seconds=600)
    record = phone.call(ANA, ana, partner)

    call = programme.call(record.sid)
    assert call.outcome == outcome
    assert call.accepted_at is None and call.duration_seconds == 0
    assert prompts.PARTNER_UNREACHED in ana.text
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at is None


def test_a_talk_shorter_than_a_minute_is_short_not_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    record = phone.call(ANA, Scripted(talk_seconds=45), Scripted(["1"]))
    call = programme.call(record.sid)
    assert (call.outcome, call.duration_seconds) == ("short", 45)
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at is None


def test_partner_is_told_of_missed_attempts_next_time_they_call(
    phone: Telephone, programme: Programme, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    phone.call(ANA, Scripted(), Scripted(answers=False))
    clock.advance(hours=2)
    phone.call(ANA, Scripted(), Scripted(["2"]))
    clock.advance(hours=2)

    bea = Scripted(talk_seconds=120)
    phone.call(BEA, bea, Scripted(["1"]))
    assert prompts.MISSED_MANY.format(count=2) in bea.text

    clock.advance(hours=2)
    again = Scripted()
    phone.call(BEA, again, Scripted(answers=False))
    assert "tried to call you" not in again.text


def test_partner_in_quiet_hours_is_not_rung(phone: Telephone, programme: Programme, clock: FakeClock) -> None:
    ana_id = programme.enrol("Ana", ANA, tz="America/New_York")
    bea_id = programme.enrol("Bea", BEA, tz="America/Los_Angeles", quiet="21:00-09:00")
    programme.pair(ana_id, bea_id)
    clock.now = clock.now.replace(hour=6)  # 22:00 in Los Angeles, 01:00 in Boston

    ana = Scripted()
    record = phone.call(ANA, ana)

    assert not record.verbs("Dial")
    assert prompts.PARTNER_QUIET.format(when="after 12 noon") in ana.text
    assert prompts.OFFER_MESSAGE in ana.text
    call = programme.call(record.sid)
    assert (call.outcome, call.callee_id, call.initiator_id) == ("quiet_hours", bea_id, ana_id)


def test_caller_leaves_a_message_for_the_care_team_after_the_call(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["1"], talk_seconds=200, ends="star", message_seconds=35)
    record = phone.call(ANA, ana, Scripted(["1"]))

    assert prompts.RECORD_PROMPT in ana.text and ana.heard[-1] == prompts.MESSAGE_THANKS
    (rec,) = record.verbs("Record")
    assert rec.get("maxLength") == "180" and rec.get("finishOnKey") == "#"
    assert rec.get("recordingStatusCallback") == "https://peerline.example.org/twilio/recording"
    (message,) = programme.rows(CareTeamMessage)
    call = programme.call(record.sid)
    assert message.recording_sid == record.recording_sid
    assert (message.participant_id, message.call_id, message.duration_seconds) == (
        ana_and_bea[0],
        call.id,
        35,
    )
    assert message.handled_at is None
    assert call.outcome == "contact"


def test_participant_without_a_partner_hears_so_and_can_leave_a_message(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    programme.end_pair(ana_and_bea[2])
    ana = Scripted(["1"])
    record = phone.call(ANA, ana)
    assert prompts.NOT_PAIRED in ana.text
    assert not record.verbs("Dial")
    assert len(programme.rows(CareTeamMessage)) == 1


def test_the_partner_never_hears_or_sees_the_callers_number(phone: Telephone, ana_and_bea: Pairing) -> None:
    bea = Scripted(["1"])
    record = phone.call(ANA, Scripted(talk_seconds=80), bea)
    from xml.etree.ElementTree import tostring

    for doc in record.partner_responses:
        assert ANA[2:] not in tostring(doc).decode()
    assert_no_number_spoken(bea)


def test_phone_numbers_are_not_stored_in_plain_text(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, settings: object
) -> None:
    phone.call(ANA, Scripted(["1"], talk_seconds=100), Scripted(["1"]))
    phone.call("anonymous", Scripted(["6175550102#"]), Scripted(answers=False))
    url: str = settings.database_url  # type: ignore[attr-defined]
    if not url.startswith("sqlite"):
        pytest.skip("file check is for SQLite")
    path = url.removeprefix("sqlite:///")
    for file in glob.glob(path + "*"):
        data = Path(file).read_bytes()
        for number in (ANA, BEA):
            assert number[2:].encode() not in data
            assert number[5:].encode() not in data
