"""A call's row read as plain columns and saved with one UPDATE: the same row the ORM writes.

The webhook steps and the callbacks that change a call read it with `calls.read_call`
(or `read_room`), change it as they would any Call, and `calls.save` writes what changed.
These tests hold that against the ORM's own flush: the same changes to two equal rows,
one through each way, leave equal rows.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Call
from app.services import calls
from ivr.vocab import AnsweredBy, CallKind, CallStatus, EndReason, Outcome, Place
from tests.conftest import Programme

NOW = datetime(2026, 11, 17, 20, 0, tzinfo=UTC)
OWN = {"id", "twilio_call_sid", "room", "partner_call_sid"}  # unique per row by construction


def _row(db: Session, sid: str) -> dict[str, Any]:
    call = db.connection().execute(calls._ROW_BY_SID.statement, {"sid": sid}).one()
    return {key: value for key, value in zip(calls._KEYS, call, strict=True) if key not in OWN}


def _changes(rng: random.Random, people: tuple[int, int, int]) -> list[tuple[str, Any]]:
    """A step's worth of changes, of every kind of column: ids, times, counts, vocabulary, NULLs."""
    ana, bea, pair = people
    choices: list[tuple[str, list[Any]]] = [
        ("kind", list(CallKind)),
        ("pair_id", [pair, None]),
        ("initiator_id", [ana, bea, None]),
        ("callee_id", [ana, bea, None]),
        ("answered_at", [NOW, NOW + timedelta(seconds=7), None]),
        ("bridged_at", [NOW + timedelta(seconds=3), None]),
        ("accepted_at", [NOW + timedelta(minutes=1), None]),
        ("ended_at", [NOW + timedelta(minutes=20), None]),
        ("duration_seconds", [0, 61, 930, None]),
        ("outcome", list(Outcome)),
        ("end_reason", [*EndReason, None]),
        ("notice_version", ["2026-01", None]),
        ("caller_language", ["en", "es", None]),
        ("partner_language", ["es", None]),
        ("id_tries", [0, 1, 2]),
        ("status", [*CallStatus, None]),
        ("status_sequence", [0, 4, None]),
        ("partner_status", [*CallStatus, None]),
        ("partner_ended_at", [NOW + timedelta(minutes=19), None]),
        ("partner_answered_by", [*AnsweredBy, None]),
        ("talk_seconds", [0, 845, None]),
        ("caller_stepped_out", [0, 1]),
        ("partner_stepped_out", [0, 2]),
        ("caller_place", [*Place, None]),
        ("partner_place", [*Place, None]),
        ("dial_seconds", [60, None]),
    ]
    picked = rng.sample(choices, rng.randint(0, 6))
    return [(key, rng.choice(values)) for key, values in picked]


def test_the_same_changes_saved_from_a_plain_row_or_flushed_by_the_orm_leave_the_same_row(
    programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    rng = random.Random(15)
    with programme.session() as db:
        for sid in ("CA" + "1" * 32, "CA" + "2" * 32):
            calls.open_call(db, sid, now=NOW)
        db.commit()
    for _ in range(60):
        changes = _changes(rng, ana_and_bea)
        with programme.session() as db:
            orm = calls.find_call(db, "CA" + "1" * 32)
            plain = calls.read_call(db, "CA" + "2" * 32)
            assert orm is not None and plain is not None
            for key, value in changes:
                setattr(orm, key, value)
                setattr(plain, key, value)
            calls.save(db, plain)
            db.commit()
        with programme.session() as db:
            assert _row(db, "CA" + "2" * 32) == _row(db, "CA" + "1" * 32)


def test_a_save_writes_only_the_columns_changed_since_the_row_was_read_or_last_saved(
    programme: Programme, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = "CA" + "3" * 32
    with programme.session() as db:
        calls.open_call(db, sid, now=NOW)
        db.commit()
    written: list[tuple[str, ...]] = []
    update_of = calls._update_of
    monkeypatch.setattr(calls, "_update_of", lambda keys: written.append(keys) or update_of(keys))
    with programme.session() as db:
        call = calls.read_call(db, sid)
        assert call is not None
        calls.save(db, call)
        call.status = CallStatus.RINGING
        calls.save(db, call)
        # meanwhile another statement of the same transaction changes a column
        db.connection().execute(
            update(Call).where(Call.twilio_call_sid == sid).values(partner_status=CallStatus.IN_PROGRESS)
        )
        call.talk_seconds = 12
        calls.save(db, call)
        calls.save(db, call)
        db.commit()
    assert written == [("status",), ("talk_seconds",)]
    with programme.session() as db:
        row = calls.find_call(db, sid)
        assert row is not None
        assert (row.status, row.talk_seconds, row.partner_status) == (
            CallStatus.RINGING,
            12,
            CallStatus.IN_PROGRESS,
        )


def test_a_plain_row_reads_every_column_as_the_orm_does(
    programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    ana, bea, pair = ana_and_bea
    sid = "CA" + "4" * 32
    with programme.session() as db:
        call = calls.open_call(db, sid, now=NOW)
        call.pair_id, call.initiator_id, call.callee_id = pair, ana, bea
        call.status, call.partner_answered_by = CallStatus.COMPLETED, AnsweredBy.MACHINE_END_BEEP
        call.ended_at, call.outcome, call.room = NOW + timedelta(minutes=3), Outcome.CONTACT, "room-x"
        db.commit()
    with programme.session() as db:
        orm = calls.find_call(db, sid)
        plain = calls.read_room(db, "room-x")
        assert orm is not None and plain is not None
        for column in Call.__table__.columns:
            assert getattr(plain, column.key) == getattr(orm, column.key), column.key
            assert type(getattr(plain, column.key)) is type(getattr(orm, column.key)), column.key
        assert plain.ended_at is not None and plain.ended_at.tzinfo is not None


def test_a_person_read_as_plain_columns_is_the_person_the_orm_reads(
    programme: Programme, ana_and_bea: tuple[int, int, int]
) -> None:
    from app.models import Participant

    ana, _, _ = ana_and_bea
    with programme.session() as db:
        plain = calls.read_person(db, ana)
        orm = db.get(Participant, ana)
        assert plain is not None and orm is not None and plain is not orm
        for column in Participant.__table__.columns:
            assert getattr(plain, column.key) == getattr(orm, column.key), column.key
        assert calls.read_person(db, -1) is None
