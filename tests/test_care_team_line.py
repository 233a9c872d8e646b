"""The care team's staffed line: `0` after stepping out of a call, only while it is staffed."""

from __future__ import annotations

import pytest

from app.settings import Settings
from app.simulator.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import ANA, FakeClock, Programme

NURSE_LINE = "+16175550188"
Pairing = tuple[int, int, int]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # nurses answer 09:00-17:00 in Boston; the test clock starts at 15:00 there
    return settings.model_copy(
        update={
            "care_team_line": NURSE_LINE,
            "care_team_hours": "09:00-17:00",
            "programme_timezone": "America/New_York",
        }
    )


def test_inside_its_hours_a_caller_who_stepped_out_is_put_through_to_a_nurse_and_comes_back(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    ana = Scripted(["0", "2"], talk_seconds=70, ends="star")
    bea = Scripted(["1"], talk_seconds=40)

    record = phone.call(ANA, ana, bea)

    assert prompts.MENU_NURSE in ana.text
    assert prompts.NURSE_CONNECTING in ana.text
    (nurse,) = [n for n in record.verbs("Number")]
    assert nurse.text == NURSE_LINE
    (dial,) = [d for d in record.verbs("Dial") if d.find("Number") is not None]
    assert dial.get("callerId") == "+18005550100"  # the programme's number, never the caller's
    # after the nurse, the menu again, then back to Bea, who waited on hold
    after_the_nurse = ana.heard[ana.heard.index(prompts.NURSE_CONNECTING) :]
    assert prompts.MENU_BACK in after_the_nurse
    assert prompts.PARTNER_AWAY in bea.text
    call = programme.call(record.sid)
    assert call.caller_stepped_out == 1 and call.talk_seconds == 110 and call.outcome == "contact"


def test_outside_its_hours_no_nurse_is_offered_and_0_is_the_menu_again(
    phone: Telephone, programme: Programme, clock: FakeClock, ana_and_bea: Pairing
) -> None:
    clock.now = clock.now.replace(hour=23)  # 18:00 in Boston
    ana = Scripted(["0", "2"], talk_seconds=70, ends="star")
    record = phone.call(ANA, ana, Scripted(["1"], talk_seconds=20))

    assert prompts.MENU_NURSE not in ana.text
    assert prompts.NURSE_CONNECTING not in ana.text
    assert not record.verbs("Number")
    assert programme.call(record.sid).talk_seconds == 90


def test_the_partner_may_reach_the_nurse_too(
    phone: Telephone, programme: Programme, ana_and_bea: Pairing
) -> None:
    bea = Scripted(["1", "0", "2"])
    record = phone.call(ANA, Scripted(talk_seconds=61, ends="partner-star", talks=[(5, "partner")]), bea)
    assert prompts.NURSE_CONNECTING in bea.text
    assert [n.text for n in record.partner_verbs("Number")] == [NURSE_LINE]
    assert programme.call(record.sid).partner_stepped_out == 1


@pytest.mark.parametrize(
    ("hours", "line", "utc_hour", "staffed"),
    [
        ("09:00-17:00", NURSE_LINE, 20, True),  # 15:00 in Boston
        ("09:00-17:00", NURSE_LINE, 23, False),  # 18:00
        ("22:00-06:00", NURSE_LINE, 4, True),  # 23:00, a night line
        (None, NURSE_LINE, 4, True),  # no hours: whenever the line is set
        ("09:00-17:00", None, 20, False),  # no line: never
    ],
)
def test_the_line_is_offered_only_while_staffed_in_the_programmes_zone(
    settings: Settings, hours: str | None, line: str | None, utc_hour: int, staffed: bool
) -> None:
    from datetime import UTC, datetime

    from app.services.policy import Policy

    policy = Policy.from_settings(
        settings.model_copy(update={"care_team_hours": hours, "care_team_line": line})
    )
    now = datetime(2026, 11, 17, utc_hour, 0, tzinfo=UTC)
    assert (policy.nurse_line(now) is not None) is staffed


def test_care_team_settings_are_checked_at_start() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="care-team hours"):
        Settings(care_team_hours="nine to five")
    with pytest.raises(ValidationError, match="E\\.164"):
        Settings(care_team_line="not a number")
    with pytest.raises(ValidationError, match="time zone"):
        Settings(programme_timezone="Mars/Olympus")
    assert Settings(care_team_line="(617) 555-0188").care_team_line == NURSE_LINE
