"""The de-identified research export: pair-weeks, participants and a data dictionary, as CSV.

HIPAA Safe Harbor counts dates as identifiers, so nothing here is a date: time is the
week since pairing and the month of enrolment as an offset from the programme's first.
Pairs and participants appear only under research ids: an HMAC of the database id under
an export key, written as letters. The same key gives the same ids (a later export
links to an earlier one); another key gives ids that cannot be linked to them, and
without the key nobody can go from a research id back to a database id. No name,
number, free text or database id is written, and the rows are sorted by research id,
so not even the order of enrolment shows.

Definitions are the engagement measures' (app/services/engagement.py): a call is an
accepted call, a contact one with at least MIN_CONTACT_SECONDS of talk, a partner call
a peer call or a reminder call the participant turned into a bridge.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import secrets
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from app.models import Call, CareTeamMessage, Pair, Participant
from app.services.engagement import (
    ACCEPTED,
    CONTACT,
    IN_PAIRING,
    REMINDER_ANSWERED,
    REMINDER_BRIDGED,
    REMINDER_CALL,
    SIDE_A,
    SIDE_B,
    WEEK_MS,
    EngagedWhen,
    count_where,
    elapsed_ms,
    pair_spans,
)
from app.services.errors import Invalid
from ivr.vocab import CallKind

PAIR_WEEKS = "pair_weeks.csv"
PARTICIPANTS = "participants.csv"
DICTIONARY = "data-dictionary.csv"
MONTH_DAYS = 30

PAIR_WEEK_COLUMNS: list[tuple[str, str]] = [
    ("pair", "research id of the pair (letters; stable for one export key, unlinkable across keys)"),
    ("week", "week since pairing: 1 = the first 7 days after the pair was made"),
    ("week_complete", "true when the whole week had passed, before the pair ended or the export"),
    ("calls", "accepted calls started this week: the partner pressed 1 to talk"),
    ("contacts", "accepted calls with at least MIN_CONTACT_SECONDS (default 60) of talk"),
    ("attempts", "partner calls started this week that were not contacts"),
    ("talk_minutes", "minutes both partners talked, summed over the week's accepted calls"),
    (
        "calls_by_a",
        "partner calls started this week by side a (peer calls and reminder calls turned into one)",
    ),
    ("calls_by_b", "partner calls started this week by side b"),
    ("initiator", "who started more of the week's partner calls: a, b, even, or none"),
    ("reminders_placed", "reminder calls placed to either partner this week"),
    ("reminders_answered", "reminder calls answered by a person (not an answering machine)"),
    ("reminders_converted", "reminder calls the participant turned into a call to the partner (pressed 1)"),
    ("messages", "care-team messages either partner left this week"),
]
PARTICIPANT_COLUMNS: list[tuple[str, str]] = [
    ("participant", "research id of the participant (letters; stable for one export key)"),
    ("pair", "research id of the pair; a participant paired twice has a row for each pair"),
    ("side", "a or b: a is the partner who was enrolled first (the lower internal number)"),
    ("language", "language of the prompts: en or es"),
    ("engaged", "true once in at least one accepted call (or contact, as ENGAGED_WHEN sets) in any pair"),
    (
        "enrolment_month",
        "month of enrolment as an offset: 1 = the 30 days from the programme's first enrolment",
    ),
    ("weeks_paired", "weeks from pairing to the end of the pair or of the export, rounded up"),
    ("calls_started", "partner calls this participant started in this pair"),
    ("reminders_placed", "reminder calls placed to this participant in this pair"),
    ("reminders_answered", "of those, answered by a person"),
]
DICTIONARY_COLUMNS: list[tuple[str, str]] = [
    ("file", "the file described, with its .csv extension"),
    ("column", "the column described"),
    ("meaning", "what the column holds"),
]
FILES = {PAIR_WEEKS: PAIR_WEEK_COLUMNS, PARTICIPANTS: PARTICIPANT_COLUMNS, DICTIONARY: DICTIONARY_COLUMNS}
# a zip entry's time would be a date (the export's); every entry gets the format's earliest
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# ---------------------------------------------------------------- research ids and the export key


class ResearchIds:
    """Database ids to research ids: HMAC-SHA256 under the export key, as 12 letters.

    Letters only, so no research id can look like a phone number, a date or a database id.
    12 letters are 56 bits: two of a programme's ids colliding is a one-in-a-billion event.
    """

    LETTERS = "abcdefghijklmnopqrstuvwxyz"
    LENGTH = 12

    def __init__(self, key: str) -> None:
        if not key.strip():
            raise Invalid("export key: must not be empty")
        self._key = key.strip().encode()

    def _id(self, kind: str, db_id: int) -> str:
        number = int.from_bytes(hmac.new(self._key, f"{kind}:{db_id}".encode(), hashlib.sha256).digest())
        out = []
        for _ in range(self.LENGTH):
            number, digit = divmod(number, len(self.LETTERS))
            out.append(self.LETTERS[digit])
        return "".join(out)

    def pair(self, db_id: int) -> str:
        return self._id("pair", db_id)

    def participant(self, db_id: int) -> str:
        return self._id("participant", db_id)


def new_key() -> str:
    return secrets.token_hex(32)


def key_from_file(path: Path) -> tuple[str, bool]:
    """The export key kept in `path`, made (random, readable by its owner only) when the
    file does not exist yet. Returns (key, whether it was made now)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            key = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise Invalid(f"--key-file: cannot read {path} ({type(exc).__name__})") from None
        if not key:
            raise Invalid(f"--key-file: {path} is empty; delete it to have a new key made") from None
        return key, False
    except OSError as exc:
        raise Invalid(f"--key-file: cannot create {path} ({exc.strerror})") from None
    key = new_key()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True


def prepare_out(out: Path, key_file: Path | None) -> None:
    """Create `out`, or refuse one that holds anything, or a key file that would travel with it."""
    if out.exists() and not out.is_dir():
        raise Invalid(f"--out: {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise Invalid(f"--out: {out} is not empty; give a new or empty directory")
    if key_file is not None and out.resolve() in key_file.resolve().parents:
        raise Invalid("--key-file: keep the key outside --out, or it would travel with the data")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Invalid(f"--out: cannot create {out} ({exc.strerror})") from None


# ---------------------------------------------------------------- the rows


@dataclass(frozen=True)
class ResearchExport:
    files: dict[str, str]  # file name -> CSV text
    pairs: int
    participants: int
    pair_weeks: int

    def write(self, out: Path) -> list[Path]:
        written = []
        for name, body in self.files.items():
            path = out / name
            path.write_text(body, encoding="utf-8", newline="")
            written.append(path)
        return written

    def zipped(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, body in self.files.items():
                archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), body.encode("utf-8"), zipfile.ZIP_DEFLATED)
        return buffer.getvalue()


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


PARTNER_CALL = or_(Call.kind == CallKind.PEER, REMINDER_BRIDGED)
WeekKey = tuple[int, int]  # (pair id, week index from 0)


def _week_figures(db: Session) -> dict[WeekKey, tuple[int, ...]]:
    """Per pair and week since pairing, every count the files need, summed by the database."""
    dialect = db.get_bind().dialect.name
    week = elapsed_ms(dialect, Call.started_at, Pair.started_at) // WEEK_MS
    by_a, by_b = Call.initiator_id == SIDE_A, Call.initiator_id == SIDE_B
    rows = (
        db.connection()
        .execute(
            select(
                Call.pair_id,
                week.label("week"),
                count_where(ACCEPTED),
                count_where(CONTACT),
                count_where(and_(PARTNER_CALL, not_(CONTACT))),
                func.coalesce(func.sum(case((ACCEPTED, Call.duration_seconds), else_=0)), 0),
                count_where(and_(PARTNER_CALL, by_a)),
                count_where(and_(PARTNER_CALL, by_b)),
                count_where(and_(REMINDER_CALL, by_a)),
                count_where(and_(REMINDER_ANSWERED, by_a)),
                count_where(and_(REMINDER_CALL, by_b)),
                count_where(and_(REMINDER_ANSWERED, by_b)),
                count_where(REMINDER_BRIDGED),
            )
            .select_from(Call)
            .join(Pair, Pair.id == Call.pair_id)
            .where(IN_PAIRING)
            .group_by(Call.pair_id, "week")
        )
        .all()
    )
    return {(int(r[0]), int(r[1])): tuple(int(x) for x in r[2:]) for r in rows}


def _week_messages(db: Session) -> Counter[WeekKey]:
    dialect = db.get_bind().dialect.name
    week = elapsed_ms(dialect, CareTeamMessage.received_at, Pair.started_at) // WEEK_MS
    counts: Counter[WeekKey] = Counter()
    for side in (Pair.participant_a_id, Pair.participant_b_id):
        for pair_id, index, n in (
            db.connection()
            .execute(
                select(Pair.id, week.label("week"), func.count(CareTeamMessage.id))
                .join(CareTeamMessage, CareTeamMessage.participant_id == side)
                .where(
                    CareTeamMessage.received_at >= Pair.started_at,
                    or_(Pair.ended_at.is_(None), CareTeamMessage.received_at < Pair.ended_at),
                )
                .group_by(Pair.id, "week")
            )
            .all()
        ):
            counts[(int(pair_id), int(index))] += int(n)
    return counts


def _initiator(by_a: int, by_b: int) -> str:
    if by_a == by_b:
        return "even" if by_a else "none"
    return "a" if by_a > by_b else "b"


def build(db: Session, *, ids: ResearchIds, now: datetime, engaged_when: EngagedWhen) -> ResearchExport:
    """The three files, from everything in the database up to `now`."""
    spans = pair_spans(db, now, "UTC")  # the cohort label is not exported: any zone will do
    weeks = _week_figures(db)
    messages = _week_messages(db)
    people = {
        pid: (language, enrolled)
        for pid, language, enrolled in db.connection().execute(
            select(Participant.id, Participant.language, Participant.created_at).where(
                Participant.id.in_(select(Pair.participant_a_id).union(select(Pair.participant_b_id)))
            )
        )
    }
    first_enrolment = min((enrolled for _, enrolled in people.values()), default=now)

    pair_week_rows: list[list[object]] = []
    per_side: dict[tuple[int, int], list[int]] = {}  # (pair, participant) -> calls, placed, answered
    engaged: set[int] = set()
    for span in spans:
        count = -(-span.exposure_ms // WEEK_MS)  # every week begun, the last perhaps under way
        finished = span.finished_weeks
        research_pair = ids.pair(span.id)
        side_a = per_side.setdefault((span.id, span.a), [0, 0, 0])
        side_b = per_side.setdefault((span.id, span.b), [0, 0, 0])
        for index in range(count):
            (
                calls,
                contacts,
                attempts,
                talk,
                by_a,
                by_b,
                placed_a,
                answered_a,
                placed_b,
                answered_b,
                bridged,
            ) = weeks.get((span.id, index), (0,) * 11)
            if calls if engaged_when == "accepted" else contacts:
                engaged.update((span.a, span.b))
            for tally, values in (
                (side_a, (by_a, placed_a, answered_a)),
                (side_b, (by_b, placed_b, answered_b)),
            ):
                for i, v in enumerate(values):
                    tally[i] += v
            pair_week_rows.append(
                [
                    research_pair,
                    index + 1,
                    _bool(index < finished),
                    calls,
                    contacts,
                    attempts,
                    round(talk / 60, 2),
                    by_a,
                    by_b,
                    _initiator(by_a, by_b),
                    placed_a + placed_b,
                    answered_a + answered_b,
                    bridged,
                    messages.get((span.id, index), 0),
                ]
            )
    pair_week_rows.sort(key=lambda row: (row[0], row[1]))

    participant_rows: list[list[object]] = []
    for span in spans:
        weeks_paired = -(-span.exposure_ms // WEEK_MS)
        for side, person in (("a", span.a), ("b", span.b)):
            language, enrolled = people.get(person, ("en", first_enrolment))
            offset_days = (enrolled - first_enrolment) // timedelta(days=1)
            calls_started, placed, answered = per_side[(span.id, person)]
            participant_rows.append(
                [
                    ids.participant(person),
                    ids.pair(span.id),
                    side,
                    _language(language),
                    _bool(person in engaged),
                    offset_days // MONTH_DAYS + 1,
                    weeks_paired,
                    calls_started,
                    placed,
                    answered,
                ]
            )
    participant_rows.sort(key=lambda row: (row[0], row[1]))

    dictionary_rows: list[list[object]] = [
        [name, column, meaning] for name, columns in FILES.items() for column, meaning in columns
    ]
    return ResearchExport(
        files={
            PAIR_WEEKS: _csv([c for c, _ in PAIR_WEEK_COLUMNS], pair_week_rows),
            PARTICIPANTS: _csv([c for c, _ in PARTICIPANT_COLUMNS], participant_rows),
            DICTIONARY: _csv([c for c, _ in DICTIONARY_COLUMNS], dictionary_rows),
        },
        pairs=len(spans),
        participants=len({person for span in spans for person in (span.a, span.b)}),
        pair_weeks=len(pair_week_rows),
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _language(value: str) -> str:
    code = (value or "en").strip().lower()
    return code if code in ("en", "es") else "other"
