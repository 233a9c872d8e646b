"""Whole calls, driven through the same signed requests Twilio sends: the webhooks, the
conference callbacks, and the fake REST API the service places and moves legs with."""

from __future__ import annotations

import glob
import random
import re
from pathlib import Path
from urllib.parse import unquote
from xml.etree.ElementTree import tostring

import pytest

from app.models import CareTeamMessage, KeyedIdFailure, Pair
from app.simulator.telephone import CallRecord, Scripted, Telephone
from ivr import prompts
from ivr.vocab import AnsweredBy, EndReason
from tests.conftest import ANA, BEA, PROGRAMME_NUMBER, PUBLIC_BASE_URL, STRANGER, FakeClock, Programme

Pairing = tuple[int, int, int]
DIGITS_RUN = re.compile(r"\d[\d\s,().-]{6,}\d")
SUPPORT_SPOKEN = "eight zero zero, five five five, zero one seven seven"


def assert_no_number_spoken(*parties: Scripted) -> None:
    for party in parties:
        for sentence in party.heard:
            assert not DIGITS_RUN.search(sentence), f"a number was spoken: {sentence!r}"


def urls_written(record: CallRecord, phone: Telephone) -> list[str]:
    """Every URL the service wrote for Twilio to request, and every URL it asked Twilio to call."""
    urls = [url for url, _ in record.callbacks]
    for doc in record.responses + record.partner_responses:
        for element in doc.iter():
            urls += [
                v for k, v in element.attrib.items() if k in ("action", "url", "waitUrl", "statusCallback")
            ]
            if element.tag == "Redirect" and element.text:
                urls.append(element.text)
    for placed in phone.fake.calls:
        urls += [placed.url, placed.status_callback or ""]
    urls += [url for _sid, url in phone.fake.changes]
    return urls


# ---------------------------------------------------------------- the bridge


def test_the_caller_joins_a_room_the_partner_is_rung_into_and_a_long_talk_is_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, bea_id, pair_id = ana_and_bea
    ana = Scripted(talk_seconds=300)
    bea = Scripted(["1"])

    record = phone.call(ANA, ana, bea)

    assert ana.heard[:4] == [
        "Hello, Ana. This is Peerline.",
        prompts.NOTICE,
        prompts.CONNECTING,
        prompts.STAR_HINT,
    ]
    assert prompts.HOLD in ana.text  # alone in the room while Bea's phone rings and whispers
    assert bea.heard[:3] == [prompts.WHISPER, prompts.NOTICE, prompts.WHISPER_ASK]
    assert prompts.STAR_HINT in bea.text  # the partner is told about star too
    assert prompts.PARTNER_HUNG_UP in ana.text  # Bea hung up: Ana is told at once
    (placed,) = phone.fake.calls
    call = programme.call(record.sid)
    assert (placed.to, placed.from_, placed.timeout) == (BEA, PROGRAMME_NUMBER, 30)
    assert placed.url == f"{PUBLIC_BASE_URL}/twilio/voice/whisper?room={call.room}"
    assert placed.status_callback == f"{PUBLIC_BASE_URL}/twilio/status?room={call.room}"
    assert placed.status_callback_event == ["initiated", "ringing", "answered", "completed"]
    assert placed.machine_detection == "Enable"
    assert_no_number_spoken(ana, bea)

    assert (call.kind, call.initiator_id, call.callee_id, call.pair_id) == ("peer", ana_id, bea_id, pair_id)
    assert call.partner_call_sid == placed.sid == record.partner_sid
    assert call.outcome == "contact" and call.duration_seconds == call.talk_seconds == 300
    assert call.accepted_at is not None and call.notice_version == prompts.NOTICE_VERSION
    assert call.ended_at is not None and call.partner_ended_at is not None
    assert (call.caller_stepped_out, call.partner_stepped_out) == (0, 0)
    assert programme.get(Pair, pair_id).last_contact_at == call.accepted_at


def test_talk_time_is_the_time_both_were_in_the_room_not_the_whisper_or_the_hold(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    record = phone.call(ANA, Scripted(talk_seconds=75), Scripted(["1"]))
    call = programme.call(record.sid)
    assert record.together_seconds == 75
    assert abs((call.talk_seconds or 0) - 75) <= 1
    # the partner's leg and the caller's lasted longer: ringing, whisper, hold are not talk
    assert (call.partner_seconds or 0) > 75 + 10 and record.seconds > 75 + 20


# ---------------------------------------------------------------- identifying the caller


def test_caller_with_withheld_number_is_greeted_then_identified_by_keyed_home_number(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, _, pair_id = ana_and_bea
    ana = Scripted(["6175550101#"], talk_seconds=90)

    record = phone.call("anonymous", ana, Scripted(["1"]))

    assert ana.heard[:2] == [prompts.GREETING, prompts.ASK_HOME_NUMBER]
    assert "Hello, Ana" in ana.text
    call = programme.call(record.sid)
    assert (call.initiator_id, call.pair_id, call.outcome) == (ana_id, pair_id, "contact")


def test_a_caller_from_an_unknown_phone_keys_the_number_with_dashes_and_spaces_ignored(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["617 555 0101#"])
    record = phone.call(STRANGER, ana, Scripted(answers=False))
    assert programme.call(record.sid).initiator_id == ana_and_bea[0]


def test_again_is_heard_only_after_a_wrong_entry(phone: Telephone, ana_and_bea: Pairing) -> None:
    silent = Scripted([None, None])
    phone.call("anonymous", silent)
    assert silent.heard == [
        prompts.GREETING,
        prompts.ASK_HOME_NUMBER,
        prompts.SPANISH_CHOICE,  # the bilingual opening, in the Spanish voice
        prompts.ASK_HOME_NUMBER,
        prompts.SPANISH_CHOICE,
        prompts.NO_ANSWER_GOODBYE,
    ]
    wrong = Scripted(["6175550188#", "h"])
    phone.call("anonymous", wrong)
    assert wrong.heard[-2:] == [prompts.NUMBER_NOT_FOUND, prompts.ASK_HOME_NUMBER_AGAIN]


def test_three_wrong_home_numbers_end_with_the_care_teams_number_said_twice(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    caller = Scripted(["6175550188#", "6175550177#", "12#"])

    record = phone.call(STRANGER, caller)

    assert caller.text.count(prompts.NUMBER_NOT_FOUND) == 2
    assert caller.heard[-4:] == [
        prompts.NUMBER_GIVE_UP,
        prompts.SUPPORT.format(number=SUPPORT_SPOKEN),
        prompts.SUPPORT_AGAIN.format(number=SUPPORT_SPOKEN),
        prompts.JUST_GOODBYE,
    ]
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
    assert locked.heard[0] == prompts.LOCKED_OUT and SUPPORT_SPOKEN in locked.text

    clock.advance(hours=1)
    freed = Scripted(["6175550101#"])
    phone.call(STRANGER, freed)
    assert "Hello, Ana" in freed.text


@pytest.mark.parametrize("withheld", ["anonymous", "Anonymous", "restricted", "+266696687"])
def test_callers_who_withhold_their_number_never_lock_each_other_out(
    phone: Telephone, programme: Programme, clock: FakeClock, ana_and_bea: Pairing, withheld: str
) -> None:
    """Every withheld caller shares one "number": two who mistype must not lock out the rest."""
    for _ in range(3):
        phone.call(withheld, Scripted(["6175550188#"] * 3))
        clock.advance(minutes=5)

    ana = Scripted(["6175550101#"])
    phone.call("anonymous", ana)
    assert prompts.LOCKED_OUT not in ana.text
    assert "Hello, Ana" in ana.text


# ---------------------------------------------------------------- a partner who does not come


@pytest.mark.parametrize(
    ("partner", "outcome"),
    [
        (Scripted(["2", "2"]), "declined"),
        (Scripted([None, None]), "declined"),
        (Scripted(["h"]), "declined"),
        (Scripted(answers=False), "no_answer"),
        (Scripted(busy=True), "busy"),
        (Scripted(answered_by=AnsweredBy.MACHINE_END_BEEP), "no_answer"),
    ],
    ids=[
        "presses-2-twice",
        "stays-silent",
        "hangs-up-on-whisper",
        "does-not-answer",
        "line-busy",
        "a-machine",
    ],
)
def test_a_partner_who_does_not_press_1_is_not_a_contact_and_the_caller_is_told_at_once(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, partner: Scripted, outcome: str
) -> None:
    ana = Scripted(talk_seconds=600)
    record = phone.call(ANA, ana, partner)

    call = programme.call(record.sid)
    assert call.outcome == outcome
    assert call.accepted_at is None and call.duration_seconds == 0
    # redirected out of the room, told kindly, offered the message; never left in silence
    assert prompts.PARTNER_UNREACHED in ana.text and prompts.OFFER_MESSAGE in ana.text
    assert "(silence)" not in ana.heard
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at is None


def test_a_machine_on_the_partners_phone_hears_nothing_at_all(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    machine = Scripted(answered_by=AnsweredBy.MACHINE_START)
    record = phone.call(ANA, Scripted(), machine)
    assert machine.heard == []
    assert programme.call(record.sid).end_reason == EndReason.ANSWERING_MACHINE


def test_a_partner_whose_phone_cannot_tell_a_machine_hears_no_name_until_a_key(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    bea = Scripted(["5", "1"], answered_by=AnsweredBy.UNKNOWN)
    record = phone.call(ANA, Scripted(talk_seconds=70), bea)
    assert bea.heard[:2] == [prompts.CHECK_GREETING, prompts.CHECK_ASK]
    assert prompts.WHISPER in bea.text
    assert programme.call(record.sid).outcome == "contact"


def test_a_wrong_key_in_the_whisper_is_asked_once_more(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    bea = Scripted(["7", "1"])  # 9 would repeat the question: any other key is a wrong one
    record = phone.call(ANA, Scripted(talk_seconds=70), bea)
    assert bea.heard[2:4] == [prompts.WHISPER_ASK, prompts.WHISPER_ASK_AGAIN]
    assert programme.call(record.sid).outcome == "contact"


def test_a_partner_on_another_call_is_not_rung(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    # Bea is on a Peerline call of her own (it has not ended)
    phone.post("/twilio/voice", {"CallSid": "CAbeaonthephone", "From": BEA, "CallStatus": "ringing"})
    placed_before = len(phone.fake.calls)

    ana = Scripted()
    record = phone.call(ANA, ana)

    assert prompts.PARTNER_BUSY in ana.text and prompts.OFFER_MESSAGE in ana.text
    assert not record.verbs("Dial") and len(phone.fake.calls) == placed_before
    call = programme.call(record.sid)
    assert (call.outcome, call.callee_id, call.end_reason) == (
        "busy",
        ana_and_bea[1],
        EndReason.PARTNER_ON_ANOTHER_CALL,
    )


def test_a_short_talk_is_short_not_a_contact(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    record = phone.call(ANA, Scripted(talk_seconds=45), Scripted(["1"]))
    call = programme.call(record.sid)
    assert (call.outcome, call.duration_seconds) == ("short", 45)
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at is None


def test_the_partner_is_told_of_calls_that_did_not_reach_them_but_not_of_ones_they_declined(
    phone: Telephone, programme: Programme, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    phone.call(ANA, Scripted(), Scripted(answers=False))
    clock.advance(hours=2)
    phone.call(ANA, Scripted(), Scripted(["2", "2"]))  # declined: Bea knows about this one
    clock.advance(hours=2)
    phone.call(ANA, Scripted(), Scripted(busy=True))
    clock.advance(hours=2)

    bea = Scripted(talk_seconds=120)
    phone.call(BEA, bea, Scripted(["1"]))
    assert prompts.MISSED_MANY.format(count=2) in bea.text

    clock.advance(hours=2)
    again = Scripted()
    phone.call(BEA, again, Scripted(answers=False))
    assert "tried to call you" not in again.text  # they have talked since


# ---------------------------------------------------------------- stepping out, and back


def test_the_partner_steps_out_and_returns_and_the_caller_is_never_dropped(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(talk_seconds=120, ends="partner-star", talks=[(90, "partner")])
    bea = Scripted(["1", "2"])  # 1 to talk; after star, 2 to go back

    record = phone.call(ANA, ana, bea)

    assert prompts.MENU_MESSAGE in bea.text and prompts.MENU_BACK in bea.text
    # held, not dropped: told, then waiting in the room with the hold line
    told = ana.heard.index(prompts.PARTNER_AWAY)
    assert prompts.HOLD in ana.heard[told:]
    assert "(silence)" not in ana.heard
    call = programme.call(record.sid)
    assert (call.caller_stepped_out, call.partner_stepped_out) == (0, 1)
    assert abs((call.talk_seconds or 0) - 210) <= 1 and record.together_seconds == 210
    assert call.outcome == "contact"


def test_the_caller_steps_out_leaves_a_message_and_comes_back(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana_id, _, _ = ana_and_bea
    ana = Scripted(["1", "2"], talk_seconds=100, ends="star", message_seconds=30)
    bea = Scripted(["1"], talk_seconds=80)  # Bea stayed in the room: she says how the next stretch ends

    record = phone.call(ANA, ana, bea)

    assert prompts.RECORD_PROMPT in ana.text and prompts.MESSAGE_THANKS in ana.text
    assert prompts.PARTNER_AWAY in bea.text
    assert prompts.PARTNER_HUNG_UP in bea.text  # then Ana hung up: Bea is told
    call = programme.call(record.sid)
    (message,) = programme.rows(CareTeamMessage)
    assert (message.participant_id, message.call_id, message.duration_seconds) == (ana_id, call.id, 30)
    assert (call.caller_stepped_out, call.partner_stepped_out) == (1, 0)
    assert abs((call.talk_seconds or 0) - 180) <= 1 and call.outcome == "contact"


def test_the_partner_steps_out_to_leave_a_message_of_their_own(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    _, bea_id, _ = ana_and_bea
    ana = Scripted(talk_seconds=65, ends="partner-star")
    bea = Scripted(["1", "1", None, None], message_seconds=25)

    record = phone.call(ANA, ana, bea)

    (message,) = programme.rows(CareTeamMessage)
    call = programme.call(record.sid)
    assert (message.participant_id, message.call_id) == (bea_id, call.id)
    assert prompts.BACK_TO_PARTNER in bea.text  # silence after the message: back to Ana
    assert call.partner_stepped_out == 1 and call.outcome == "contact"


def test_the_caller_hangs_up_mid_call_and_the_partner_is_told(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    bea = Scripted(["1"])
    record = phone.call(ANA, Scripted(talk_seconds=90, ends="hangup"), bea)
    assert bea.heard[-4:-1] == [prompts.PARTNER_HUNG_UP, prompts.OFFER_MESSAGE, prompts.OFFER_MESSAGE]
    call = programme.call(record.sid)
    assert (call.outcome, call.talk_seconds) == ("contact", 90)


def test_the_partner_hangs_up_mid_call_and_the_caller_leaves_a_message(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["1"], talk_seconds=200, message_seconds=35)
    record = phone.call(ANA, ana, Scripted(["1"]))

    assert prompts.PARTNER_HUNG_UP in ana.text and ana.heard[-2:] == [prompts.MESSAGE_THANKS, prompts.GOODBYE]
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
    assert message.handled_at is None and call.outcome == "contact"


def test_an_empty_recording_is_not_thanked_for_and_is_no_message(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    programme.end_pair(ana_and_bea[2])
    ana = Scripted(["1"], message_seconds=0)
    phone.call(ANA, ana)
    assert prompts.NO_MESSAGE in ana.text
    assert prompts.MESSAGE_THANKS not in ana.text
    assert programme.rows(CareTeamMessage) == []


# ---------------------------------------------------------------- callbacks in any order


@pytest.mark.parametrize("seed", range(4))
def test_shuffled_and_repeated_conference_callbacks_give_the_same_final_call(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing, seed: int
) -> None:
    phone.hold_room_callbacks = True
    ana = Scripted(talk_seconds=50, ends="partner-star", talks=[(40, "partner")])
    record = phone.call(ANA, ana, Scripted(["1", "2"]))
    before = programme.call(record.sid)
    assert before.talk_seconds == 0  # no conference callback has arrived yet

    callbacks = record.room_callbacks * 2
    random.Random(seed).shuffle(callbacks)
    for url, form in callbacks:
        assert phone.post(url, form).status_code == 200

    call = programme.call(record.sid)
    assert (call.outcome, call.talk_seconds, call.duration_seconds) == ("contact", 90, 90)
    assert (call.caller_stepped_out, call.partner_stepped_out) == (0, 1)
    assert programme.get(Pair, ana_and_bea[2]).last_contact_at == call.accepted_at


# ---------------------------------------------------------------- privacy


def test_no_number_is_in_any_url_or_in_the_twiml_the_other_party_gets(
    phone: Telephone, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["1", "2"], talk_seconds=80, ends="star", message_seconds=10)
    bea = Scripted(["1"], talk_seconds=30, ends="star", talks=[])
    bea.keys_to_press += ["2"]
    record = phone.call(ANA, ana, bea)

    for url in urls_written(record, phone):
        flat = unquote(url).replace("-", "").replace(" ", "")
        for number in (ANA, BEA):
            assert number[2:] not in flat and number[5:] not in flat, url
    for doc in record.partner_responses:
        assert ANA[2:] not in tostring(doc).decode()
    for doc in record.responses:
        assert BEA[2:] not in tostring(doc).decode()
    assert_no_number_spoken(ana, bea)


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


# ---------------------------------------------------------------- no bridge at all


def test_partner_in_quiet_hours_is_not_rung(phone: Telephone, programme: Programme, clock: FakeClock) -> None:
    ana_id = programme.enrol("Ana", ANA, tz="America/New_York")
    bea_id = programme.enrol("Bea", BEA, tz="America/Los_Angeles", quiet="21:00-09:00")
    programme.pair(ana_id, bea_id)
    clock.now = clock.now.replace(hour=6)  # 22:00 in Los Angeles, 01:00 in Boston

    ana = Scripted()
    record = phone.call(ANA, ana)

    assert not record.verbs("Dial") and phone.fake.calls == []
    assert prompts.PARTNER_QUIET.format(when="after 12 noon") in ana.text
    assert prompts.OFFER_MESSAGE in ana.text
    call = programme.call(record.sid)
    assert (call.outcome, call.callee_id, call.initiator_id) == ("quiet_hours", bea_id, ana_id)


def test_participant_without_a_partner_hears_so_and_the_care_teams_number(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    programme.end_pair(ana_and_bea[2])
    ana = Scripted(["1"])
    record = phone.call(ANA, ana)
    assert prompts.NOT_PAIRED in ana.text and ana.text.count(SUPPORT_SPOKEN) == 2
    assert not record.verbs("Dial")
    assert len(programme.rows(CareTeamMessage)) == 1


def test_a_caller_who_hangs_up_while_the_partner_rings_stops_the_ringing(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    phone.post("/twilio/voice", {"CallSid": "CAhangsup", "From": ANA, "CallStatus": "ringing"})
    (placed,) = phone.fake.calls
    phone.post("/twilio/status", {"CallSid": "CAhangsup", "CallStatus": "completed", "SequenceNumber": "1"})
    assert phone.fake.changes == [(placed.sid, "canceled")]
    assert programme.call("CAhangsup").partner_call_sid == placed.sid
