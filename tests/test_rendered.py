"""A known caller's answer, built once per shape and filled in, is exactly what the SDK builds.

`ivr/rendered.py` keeps the TwiML of `flow.connect` with placeholders for the caller's name
and the room. These tests build every answer twice, through the kept shape and whole with
the SDK, and hold the two to be the same text, for names that need escaping, both
languages, every outcome, recorded audio and two different lines.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import pytest
from twilio.twiml.voice_response import VoiceResponse

import ivr.flow as flow
from ivr import rendered
from ivr.flow import Caller, Line, Partner, Person, Urls
from ivr.prompts import Prompt as P
from ivr.quiet_hours import QuietHours
from ivr.vocab import Language

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
LINE = Line(Urls("https://peerline.example.org"), "+18005550100", NOW, support_number="+18005550199")
OTHER_LINE = dataclasses.replace(
    LINE,
    urls=Urls("https://other.example.org"),
    audio={(P.CONNECTING, Language.EN): "https://a.example/c.mp3"},
)
NAMES = ["Ana", "May C.", "Zoë & Bo", "<Al> \"Q\" 'R'", "José Nuñez", "", "   ", "a]]>b"]
ROOM = "room-0123456789abcdef01234567"


def callers(name: str, language: Language) -> list[Caller]:
    me = Person(1, name, "America/New_York", language=language)
    asleep = QuietHours.parse("00:00-23:59")
    return [
        Caller(me),  # not paired
        Caller(me, 7, Partner(2, "Bea", "America/Chicago", asleep)),
        Caller(me, 7, Partner(2, "Bea", "America/Chicago", on_call=True), missed_from_partner=1),
        Caller(me, 7, Partner(2, "Bea", "America/Chicago"), missed_from_partner=3),
        Caller(me, 7, Partner(2, "Bea", "America/Chicago")),
    ]


def whole(caller: Caller, line: Line, room: str) -> str:
    """The answer as the SDK builds it, without any kept shape."""
    line = line.speaking(caller.person.language)
    saved = flow._CONNECT._shapes
    flow._CONNECT._shapes = {}
    try:
        step = flow.connect(caller, line, room=room)
        # the first build of a shape is always made whole
        return str(step)
    finally:
        flow._CONNECT._shapes = saved


@pytest.mark.parametrize(("name", "language"), list(itertools.product(NAMES, list(Language))))
def test_a_known_callers_answer_is_what_the_sdk_builds(name: str, language: Language) -> None:
    for line in (LINE, OTHER_LINE):
        for caller in callers(name, language):
            flow.connect(caller, line, room="room-aaaaaaaaaaaaaaaaaaaaaaaa")  # the shape is kept
            assert str(flow.connect(caller, line, room=ROOM)) == whole(caller, line, ROOM)


def test_the_same_shape_serves_another_caller_and_room() -> None:
    first, second = callers("Ana", Language.EN)[-1], callers("Zoë & Bo", Language.EN)[-1]
    flow.connect(first, LINE, room=ROOM)
    answer = str(flow.connect(second, LINE, room="room-ffffffffffffffffffffffff"))
    assert "Hello, Zoë &amp; Bo." in answer
    assert "room=room-ffffffffffffffffffffffff" in answer and ROOM not in answer
    assert rendered.NAME_SLOT not in answer and rendered.ROOM_SLOT not in answer


def test_a_room_that_is_not_a_plain_word_is_built_whole() -> None:
    caller = callers("Ana", Language.EN)[-1]
    odd = "room&<x>"
    assert str(flow.connect(caller, LINE, room=odd)) == whole(caller, LINE, odd)


def test_a_shape_that_cannot_be_filled_in_is_built_whole_every_time() -> None:
    def build(line: Line, name: str | None, room: str, key: tuple[object, ...]) -> VoiceResponse:
        response = VoiceResponse()
        response.say((name or "").upper())  # the name is changed: a placeholder would not survive
        response.say(room)
        return response

    kept: rendered.Rendered[Line] = rendered.Rendered(build)
    for name in ("ana", "bea"):
        assert kept.render(LINE, name=name, room=ROOM, key=()) == str(build(LINE, name, ROOM, ()))


def test_the_time_of_day_is_no_part_of_a_shape_but_what_it_says_is() -> None:
    asleep = callers("Ana", Language.EN)[1]
    later = dataclasses.replace(LINE, now=NOW.replace(hour=20))
    for line in (LINE, later):
        assert str(flow.connect(asleep, line, room=ROOM)) == whole(asleep, line, ROOM)


# ---------------------------------------------------------------- the other steps most calls take

BRIDGE = flow.Bridge(ROOM, caller_status=None)
STEPS = {
    # name, room -> the step; `shapes` is the Rendered each one keeps
    "reminder": (lambda line, name, room: flow.reminder(Person(1, name, "America/New_York"), None, line)),
    "hold": (lambda line, name, room: flow.hold(line)),
    "whisper": (lambda line, name, room: flow.whisper(dataclasses.replace(BRIDGE, room=room), None, line)),
    "accepted": (
        lambda line, name, room: flow.whisper_answer("1", dataclasses.replace(BRIDGE, room=room), line)
    ),
    "partner gone": (lambda line, name, room: flow.partner_gone(flow.Leg.CALLER, line)),
    "partner unreached": (lambda line, name, room: flow.partner_unreached(line)),
}
KEPT = [flow._REMINDED, flow._HOLD, flow._WHISPER, flow._ACCEPTED, flow._TOLD]


def whole_step(step: object, line: Line, name: str, room: str) -> str:
    """The step as the SDK builds it, with no shape kept."""
    saved = [kept._shapes for kept in KEPT]
    for kept in KEPT:
        kept._shapes = {}
    try:
        return str(STEPS[step](line, name, room))  # type: ignore[index]
    finally:
        for kept, shapes in zip(KEPT, saved, strict=True):
            kept._shapes = shapes


@pytest.mark.parametrize(("name", "language"), list(itertools.product(NAMES, list(Language))))
def test_the_steps_kept_once_per_shape_are_what_the_sdk_builds(name: str, language: Language) -> None:
    for line in (LINE.speaking(language), OTHER_LINE.speaking(language)):
        for step, build in STEPS.items():
            build(line, "Ana", "room-aaaaaaaaaaaaaaaaaaaaaaaa")  # the shape is kept
            assert str(build(line, name, ROOM)) == whole_step(step, line, name, ROOM), step


def test_the_kept_steps_are_filled_in_from_their_shapes_not_built_again() -> None:
    for kept in KEPT:
        kept._shapes = {}
    for build in STEPS.values():
        build(LINE, "Ana", ROOM)
    for kept in KEPT:
        # a shape that could not be filled in is kept as None and built whole every time
        assert kept._shapes and all(isinstance(text, str) for text in kept._shapes.values())
