"""Key rotation: `peerline keys rotate --new-secret-file F`.

Every stored phone number is re-encrypted under the new secret and its blind index
recomputed, in small batches, each committed on its own. Nothing records progress: each row
says by itself which key it is under (the key that decrypts it), so a run that crashed is
finished by running the command again, and rows already under the new key are passed over.
Each row is changed with a compare-and-set on the ciphertext it was read with, so a number
removed on request meanwhile is never written back.

Blind indexes of caller IDs kept for the keyed-number lockout (call.caller_index,
keyed_id_failure.caller_index) cannot be recomputed without the number, which is not
stored. Those that belong to a participant (or to a withheld caller ID) are mapped to the new
index; the rest are cleared (call rows) or deleted (lockout rows): they only serve an
hour-long lockout, so the cost is that a stranger's wrong attempts from before the rotation
stop counting.

While the rotation runs the service reads with both keys (SECRET_KEY and
SECRET_KEY_PREVIOUS, app/crypto.py), so callers are recognised throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.crypto import PhoneVault
from app.models import Call, KeyedIdFailure, Participant
from ivr.phone import WITHHELD

log = logging.getLogger(__name__)

BATCH = 200
MIN_SECRET_LENGTH = 32


class RotationError(Exception):
    """Why the rotation cannot start, in one line."""


@dataclass
class RotationReport:
    numbers_rotated: int = 0
    numbers_already_new: int = 0
    indexes_fixed: int = 0
    numbers_unreadable: int = 0
    calls_mapped: int = 0
    calls_cleared: int = 0
    lockouts_mapped: int = 0
    lockouts_deleted: int = 0
    batches: int = 0

    def __str__(self) -> str:
        return (
            f"{self.numbers_rotated} numbers re-encrypted, {self.numbers_already_new} already under "
            f"the new key, {self.numbers_unreadable} under neither key; caller indexes: "
            f"{self.calls_mapped} calls and {self.lockouts_mapped} lockout rows moved to the new key, "
            f"{self.calls_cleared} calls cleared and {self.lockouts_deleted} lockout rows deleted "
            "(not a participant's)"
        )


AfterBatch = Callable[[str, int], None]


def old_secrets(current: str, previous: str | None, new: str) -> list[str]:
    """The secrets numbers may still be under: SECRET_KEY and SECRET_KEY_PREVIOUS, less the new one."""
    found = [s for s in (current, previous) if s and s != new]
    if not found:
        raise RotationError(
            "the new secret is SECRET_KEY already; "
            "set SECRET_KEY_PREVIOUS to the old secret to finish a rotation"
        )
    return list(dict.fromkeys(found))


def check_new_secret(secret: str) -> str:
    secret = secret.strip()
    if "\n" in secret or "\r" in secret:
        raise RotationError("the new secret file must hold one line")
    if len(secret) < MIN_SECRET_LENGTH:
        raise RotationError(f"the new secret must be at least {MIN_SECRET_LENGTH} characters")
    return secret


def rotate(
    make_session: sessionmaker[Session],
    old: Iterable[PhoneVault],
    new: PhoneVault,
    *,
    batch_size: int = BATCH,
    after_batch: AfterBatch | None = None,
) -> RotationReport:
    olds = list(old)
    report = RotationReport()
    mapping = _rotate_numbers(make_session, olds, new, batch_size, report, after_batch)
    # call rows written before withheld caller IDs were counted per call carry the index of
    # the shared marker: it can be carried over, unlike a stranger's number
    for marker in WITHHELD:
        for vault in olds:
            mapping[vault.blind_index("withheld:" + marker)] = new.blind_index("withheld:" + marker)
    new_indexes = set(mapping.values())
    _map_call_indexes(make_session, mapping, new_indexes, batch_size, report, after_batch)
    _map_lockout_indexes(make_session, mapping, new_indexes, batch_size, report, after_batch)
    return report


def _rowcount(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount)


def _rotate_numbers(
    make_session: sessionmaker[Session],
    olds: list[PhoneVault],
    new: PhoneVault,
    batch_size: int,
    report: RotationReport,
    after_batch: AfterBatch | None,
) -> dict[str, str]:
    """Participants' numbers to the new key; returns every old index -> its new index."""
    mapping: dict[str, str] = {}
    last_id = 0
    while True:
        with make_session() as db:
            rows = db.execute(
                select(Participant.id, Participant.phone_ciphertext, Participant.phone_index)
                .where(Participant.id > last_id, Participant.phone_ciphertext.is_not(None))
                .order_by(Participant.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return mapping
            for pid, ciphertext, index in rows:
                last_id = pid
                assert ciphertext is not None  # selected so
                number = new.decrypt_own(ciphertext)
                if number is not None:
                    report.numbers_already_new += 1
                    target = new.blind_index(number)
                    if index != target:  # a crash between the two writes cannot happen, but be sure
                        report.indexes_fixed += _rowcount(
                            db.execute(
                                update(Participant)
                                .where(Participant.id == pid, Participant.phone_ciphertext == ciphertext)
                                .values(phone_index=target)
                            )
                        )
                else:
                    number = next(
                        (n for n in (v.decrypt_own(ciphertext) for v in olds) if n is not None), None
                    )
                    if number is None:
                        report.numbers_unreadable += 1
                        log.warning("participant %s: the number is under neither key; left as it is", pid)
                        continue
                    report.numbers_rotated += _rowcount(
                        db.execute(
                            update(Participant)
                            .where(Participant.id == pid, Participant.phone_ciphertext == ciphertext)
                            .values(phone_ciphertext=new.encrypt(number), phone_index=new.blind_index(number))
                        )
                    )
                for vault in olds:
                    mapping[vault.blind_index(number)] = new.blind_index(number)
            db.commit()
        report.batches += 1
        if after_batch is not None:
            after_batch("numbers", report.batches)


def _map_call_indexes(
    make_session: sessionmaker[Session],
    mapping: dict[str, str],
    new_indexes: set[str],
    batch_size: int,
    report: RotationReport,
    after_batch: AfterBatch | None,
) -> None:
    def move(db: Session, call_id: int, index: str) -> None:
        target = mapping.get(index)
        changed = _rowcount(
            db.execute(
                update(Call).where(Call.id == call_id, Call.caller_index == index).values(caller_index=target)
            )
        )
        if target is not None:
            report.calls_mapped += changed
        else:
            report.calls_cleared += changed

    _walk(make_session, Call, new_indexes, batch_size, move, lambda: _after(report, after_batch, "calls"))


def _map_lockout_indexes(
    make_session: sessionmaker[Session],
    mapping: dict[str, str],
    new_indexes: set[str],
    batch_size: int,
    report: RotationReport,
    after_batch: AfterBatch | None,
) -> None:
    def move(db: Session, row_id: int, index: str) -> None:
        target = mapping.get(index)
        row = (KeyedIdFailure.id == row_id) & (KeyedIdFailure.caller_index == index)
        if target is not None:
            report.lockouts_mapped += _rowcount(
                db.execute(update(KeyedIdFailure).where(row).values(caller_index=target))
            )
        else:
            # a lockout for a number nobody holds any more is only a derivative of that number
            report.lockouts_deleted += _rowcount(db.execute(delete(KeyedIdFailure).where(row)))

    _walk(
        make_session,
        KeyedIdFailure,
        new_indexes,
        batch_size,
        move,
        lambda: _after(report, after_batch, "lockouts"),
    )


def _after(report: RotationReport, after_batch: AfterBatch | None, stage: str) -> None:
    report.batches += 1
    if after_batch is not None:
        after_batch(stage, report.batches)


def _walk(
    make_session: sessionmaker[Session],
    table: type[Call] | type[KeyedIdFailure],
    new_indexes: set[str],
    batch_size: int,
    move: Callable[[Session, int, str], None],
    batch_done: Callable[[], None],
) -> None:
    """Every row still indexed under an old key, in id order, one committed batch at a time:
    a rotation interrupted half-way resumes where it stopped and never holds a long lock."""
    last_id = 0
    while True:
        with make_session() as db:
            rows = db.execute(
                select(table.id, table.caller_index)
                .where(table.id > last_id, table.caller_index.is_not(None))
                .order_by(table.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return
            for row_id, index in rows:
                last_id = row_id
                if index is not None and index not in new_indexes:
                    move(db, row_id, index)
            db.commit()
        batch_done()
