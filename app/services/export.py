"""Call records for evaluation as CSV: participant ids only, no names, no numbers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Call

CALL_COLUMNS = [
    "call_id",
    "pair_id",
    "kind",
    "initiator_id",
    "callee_id",
    "started_at",
    "accepted_at",
    "ended_at",
    "duration_seconds",
    "outcome",
    "is_contact",
    "notice_version",
]
BATCH = 5000


def call_rows(db: Session, *, after_id: int, limit: int) -> list[list[Any]]:
    """The export rows (cells in CALL_COLUMNS order) of the next `limit` calls after `after_id`."""
    rows = db.execute(
        select(
            Call.id,
            Call.pair_id,
            Call.kind,
            Call.initiator_id,
            Call.callee_id,
            Call.started_at,
            Call.accepted_at,
            Call.ended_at,
            Call.duration_seconds,
            Call.outcome,
            Call.notice_version,
        )
        .where(Call.id > after_id)
        .order_by(Call.id)
        .limit(limit)
    ).all()
    return [
        [
            r.id,
            r.pair_id,
            r.kind,
            r.initiator_id,
            r.callee_id,
            _iso(r.started_at),
            _iso(r.accepted_at),
            _iso(r.ended_at),
            r.duration_seconds,
            r.outcome,
            int(r.outcome == "contact"),
            r.notice_version,
        ]
        for r in rows
    ]


def calls_csv(make_session: Callable[[], Session], batch: int | None = None) -> Iterator[str]:
    """Every call as CSV text, a batch at a time, for a streaming response.

    It opens a short session per batch rather than taking one: the stream is read after the
    request's own session has been committed and closed, and a slow download must never keep
    a transaction (on SQLite, the write lock the webhooks wait for) open between batches.
    """
    size = batch or BATCH
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CALL_COLUMNS)
    yield buffer.getvalue()
    last_id = 0
    while True:
        with make_session() as db:
            rows = call_rows(db, after_id=last_id, limit=size)
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(rows)
        last_id = rows[-1][0]
        yield buffer.getvalue()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
