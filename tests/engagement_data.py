"""Hand-built programme history for the engagement and research-export tests.

Rows go straight into the tables, so every figure can be worked out by hand from the
few calls a test makes; nothing here goes through the call flow.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from fastapi import FastAPI

from app.models import Call, CareTeamMessage, Pair, Participant
from ivr.vocab import CallKind, CallStatus, EndReason, Outcome

DAY = timedelta(days=1)
_sids = itertools.count(1)


def with_engagement_routes(app: FastAPI) -> FastAPI:
    """The app as it is: its own routers carry the engagement API and console page (this
    once wired them in while they were being built; including them twice gave the OpenAPI
    schema duplicate operation ids)."""
    return app


class History:
    """Participants, pairs, calls and messages written directly, one short transaction each."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def _add(self, row: object) -> int:
        with self.app.state.sessionmaker() as s:
            s.add(row)
            s.commit()
            return int(row.id)  # type: ignore[attr-defined]

    def person(
        self,
        name: str,
        *,
        language: str = "en",
        enrolled: datetime,
        phone: str | None = None,
        id: int | None = None,
    ) -> int:
        vault = self.app.state.context.vault
        return self._add(
            Participant(
                id=id,
                name=name,
                phone_ciphertext=vault.encrypt(phone) if phone else None,
                phone_index=vault.blind_index(phone) if phone else None,
                timezone="America/New_York",
                language=language,
                status="active",
                created_at=enrolled,
            )
        )

    def pair(
        self,
        started: datetime,
        *,
        ended: datetime | None = None,
        people: tuple[int, int] | None = None,
        id: int | None = None,
    ) -> int:
        """A pair of `people`, or of two new participants enrolled the day before."""
        a, b = people or (
            self.person(f"A{started:%m%d%H%M}", enrolled=started - DAY),
            self.person(f"B{started:%m%d%H%M}", enrolled=started - DAY),
        )
        return self._add(
            Pair(id=id, participant_a_id=a, participant_b_id=b, started_at=started, ended_at=ended, notes="")
        )

    def sides(self, pair_id: int) -> tuple[int, int]:
        with self.app.state.sessionmaker() as s:
            pair = s.get(Pair, pair_id)
            assert pair is not None
            return pair.participant_a_id, pair.participant_b_id

    def call(
        self,
        pair_id: int,
        at: datetime,
        *,
        by: str = "a",
        seconds: int | None = None,
        outcome: Outcome | None = None,
        kind: CallKind = CallKind.PEER,
        bridged: bool | None = None,
        status: CallStatus = CallStatus.COMPLETED,
        end_reason: EndReason | None = None,
    ) -> int:
        """A call started at `at` by side `by`. With `seconds` the partner accepted it and it
        is a contact from 60 s of talk; without, the partner did not answer."""
        a, b = self.sides(pair_id)
        initiator, callee = (a, b) if by == "a" else (b, a)
        accepted = seconds is not None
        if outcome is None:
            outcome = (
                (Outcome.CONTACT if (seconds or 0) >= 60 else Outcome.SHORT)
                if accepted
                else Outcome.NO_ANSWER
            )
        bridged = accepted if bridged is None else bridged
        return self._add(
            Call(
                twilio_call_sid=f"CA{next(_sids):032x}",
                kind=kind,
                pair_id=pair_id,
                initiator_id=initiator,
                callee_id=callee,
                started_at=at,
                answered_at=at if status == CallStatus.COMPLETED else None,
                bridged_at=at if bridged else None,
                accepted_at=at + timedelta(seconds=20) if accepted else None,
                ended_at=at + timedelta(seconds=60 + (seconds or 0)),
                duration_seconds=seconds if accepted else 0,
                outcome=outcome,
                end_reason=end_reason,
                status=status,
                id_tries=0,
            )
        )

    def reminder_call(
        self,
        pair_id: int,
        at: datetime,
        *,
        to: str,
        answered: bool = True,
        machine: bool = False,
        bridged_seconds: int | None = None,
    ) -> int:
        """A reminder call to side `to`: answered by a person (or a machine) or not, and
        turned into a call to the partner when `bridged_seconds` is given."""
        if bridged_seconds is not None:
            return self.call(pair_id, at, by=to, seconds=bridged_seconds, kind=CallKind.REMINDER)
        return self.call(
            pair_id,
            at,
            by=to,
            kind=CallKind.REMINDER,
            bridged=False,
            outcome=Outcome.DECLINED if answered else Outcome.NO_ANSWER,
            status=CallStatus.COMPLETED if answered or machine else CallStatus.NO_ANSWER,
            end_reason=EndReason.ANSWERING_MACHINE if machine else None,
        )

    def message(self, participant_id: int, at: datetime) -> int:
        return self._add(
            CareTeamMessage(
                recording_sid=f"RE{next(_sids):032x}",
                participant_id=participant_id,
                duration_seconds=30,
                received_at=at,
            )
        )
