"""Requests to Twilio's REST API that a call's progress asks for, as data.

A webhook or callback decides on them inside its transaction; they are made only after
the commit (app/twilio/dialer.py), never while Twilio waits for an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.vocab import StepName


@dataclass(frozen=True)
class PlacePartnerLeg:
    """Ring the partner: `calls.create(to=partner, from_=programme number, url=…/whisper)`."""

    call_id: int
    partner_id: int
    room: str


@dataclass(frozen=True)
class RedirectLeg:
    """Move a live leg to a step: `calls(sid).update(url=…)`."""

    call_sid: str
    step: StepName
    room: str


@dataclass(frozen=True)
class EndLeg:
    """End a leg nobody is left to talk to (still ringing, or in the whisper)."""

    call_sid: str


Outbound = PlacePartnerLeg | RedirectLeg | EndLeg
