"""The research export: the right figures per pair-week, and nothing that identifies anyone."""

from __future__ import annotations

import csv
import io
import re
import stat
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from fastapi import FastAPI
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli_export import export_cli
from app.models import AuditEvent, Call, CareTeamMessage
from app.services import research
from tests.conftest import ANA, BEA, CAL, DEE, SECRET, FakeClock, Programme
from tests.engagement_data import DAY, History, with_engagement_routes

NAMES = ("Anabel Zorrilla", "Beatrix Oyelaran", "Calloway Pemberton", "Delphine Quarshie")
PEOPLE = (4_000_101, 4_000_102, 4_000_103, 4_000_104)  # ids no count in the files could equal
PAIRS = (9_000_001, 9_000_002)
START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 139 days 8 hours before the clock's now

runner = CliRunner()


@pytest.fixture
def history(app: FastAPI) -> History:
    with_engagement_routes(app)
    return History(app)


def programme_history(history: History) -> None:
    """Two pairs of named, numbered participants; the first pair's side a is its participant_b."""
    ana, bea, cal, dee = (
        history.person(name, id=id_, phone=phone, language=lang, enrolled=enrolled)
        for name, id_, phone, lang, enrolled in zip(
            NAMES,
            PEOPLE,
            (ANA, BEA, CAL, DEE),
            ("en", "es", "en", "en"),
            (
                datetime(2026, 5, 1, tzinfo=UTC),
                datetime(2026, 6, 15, tzinfo=UTC),
                datetime(2026, 7, 20, tzinfo=UTC),
                datetime(2026, 7, 21, tzinfo=UTC),
            ),
            strict=True,
        )
    )
    # participant_a is Beatrix, but side a is the lower id: Anabel, who is participant_b
    first = history.pair(START, people=(bea, ana), id=PAIRS[0])
    history.call(first, START + timedelta(hours=2), by="b", seconds=600)  # week 1: Anabel, a contact
    history.call(first, START + 2 * DAY, by="a")  # week 1: Beatrix, no answer
    history.call(first, START + 8 * DAY, by="a", seconds=30)  # week 2: Beatrix, short
    history.reminder_call(first, START + 10 * DAY, to="b", bridged_seconds=120)  # week 2: Anabel pressed 1
    history.reminder_call(first, START + 15 * DAY, to="a", machine=True)  # week 3: Beatrix's machine
    history.message(ana, START + 16 * DAY)
    history.message(bea, START + 17 * DAY)
    history.message(bea, START - DAY)  # before pairing: in no week
    # 19 days: weeks 1-3, the third cut short
    second = history.pair(
        datetime(2026, 8, 1, 12, tzinfo=UTC),
        ended=datetime(2026, 8, 20, 12, tzinfo=UTC),
        people=(cal, dee),
        id=PAIRS[1],
    )
    history.call(second, datetime(2026, 8, 2, tzinfo=UTC), by="a")  # Calloway's call rang out


def build(app: FastAPI, clock: FakeClock, key: str = "key one") -> research.ResearchExport:
    with app.state.sessionmaker() as db:
        return research.build(db, ids=research.ResearchIds(key), now=clock(), engaged_when="accepted")


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_pair_weeks_hold_every_week_and_its_figures(app: FastAPI, history: History, clock: FakeClock) -> None:
    programme_history(history)
    bundle = build(app, clock)
    ids = research.ResearchIds("key one")
    rows = table(bundle.files["pair_weeks.csv"])
    first = [r for r in rows if r["pair"] == ids.pair(PAIRS[0])]
    second = [r for r in rows if r["pair"] == ids.pair(PAIRS[1])]
    assert [int(r["week"]) for r in first] == list(range(1, 21))  # week 20 is under way
    assert [r["week_complete"] for r in first] == ["true"] * 19 + ["false"]
    assert [(r["week"], r["week_complete"]) for r in second] == [("1", "true"), ("2", "true"), ("3", "false")]
    assert len(rows) == bundle.pair_weeks == 23

    def week(n: int) -> dict[str, str]:
        return {k: v for k, v in first[n - 1].items() if k not in ("pair", "week", "week_complete")}

    assert week(1) == {
        "calls": "1",
        "contacts": "1",
        "attempts": "1",
        "talk_minutes": "10.0",
        "calls_by_a": "1",
        "calls_by_b": "1",
        "initiator": "even",
        "reminders_placed": "0",
        "reminders_answered": "0",
        "reminders_converted": "0",
        "messages": "0",
    }
    assert week(2) == {
        "calls": "2",
        "contacts": "1",
        "attempts": "1",
        "talk_minutes": "2.5",
        "calls_by_a": "1",
        "calls_by_b": "1",
        "initiator": "even",
        "reminders_placed": "1",
        "reminders_answered": "1",
        "reminders_converted": "1",
        "messages": "0",
    }
    assert week(3) == {
        "calls": "0",
        "contacts": "0",
        "attempts": "0",
        "talk_minutes": "0.0",
        "calls_by_a": "0",
        "calls_by_b": "0",
        "initiator": "none",
        "reminders_placed": "1",
        "reminders_answered": "0",
        "reminders_converted": "0",
        "messages": "2",
    }
    assert second[0]["attempts"] == "1" and second[0]["initiator"] == "a"  # Calloway is side a


def test_participants_have_sides_languages_engagement_and_enrolment_offsets(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    programme_history(history)
    ids = research.ResearchIds("key one")
    rows = {r["participant"]: r for r in table(build(app, clock).files["participants.csv"])}
    ana, bea, cal, dee = (rows[ids.participant(p)] for p in PEOPLE)
    assert (ana["pair"], ana["side"], ana["language"], ana["engaged"]) == (
        ids.pair(PAIRS[0]),
        "a",
        "en",
        "true",
    )
    assert (bea["side"], bea["language"], bea["engaged"]) == ("b", "es", "true")
    assert (cal["side"], dee["side"], cal["engaged"], dee["engaged"]) == ("a", "b", "false", "false")
    # first enrolment May 1: Beatrix 45 days later, Calloway 80 days later
    assert [r["enrolment_month"] for r in (ana, bea, cal, dee)] == ["1", "2", "3", "3"]
    assert (ana["weeks_paired"], cal["weeks_paired"]) == ("20", "3")
    assert (ana["calls_started"], ana["reminders_placed"], ana["reminders_answered"]) == ("2", "1", "1")
    assert (bea["calls_started"], bea["reminders_placed"], bea["reminders_answered"]) == ("2", "1", "0")


def test_the_dictionary_describes_every_column_of_every_file(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    programme_history(history)
    bundle = build(app, clock)
    described = {(r["file"], r["column"]) for r in table(bundle.files["data-dictionary.csv"])}
    for name, body in bundle.files.items():
        header = next(csv.reader(io.StringIO(body)))
        assert {(name, column) for column in header} <= described, name
    assert all(r["meaning"] for r in table(bundle.files["data-dictionary.csv"]))
    pair_weeks = next(csv.reader(io.StringIO(bundle.files["pair_weeks.csv"])))
    assert set(pair_weeks) >= {
        "pair",
        "week",
        "contacts",
        "attempts",
        "talk_minutes",
        "calls_by_a",
        "calls_by_b",
        "reminders_placed",
        "reminders_answered",
        "messages",
    }
    people = next(csv.reader(io.StringIO(bundle.files["participants.csv"])))
    assert set(people) >= {"participant", "pair", "side", "language", "engaged"}


# ---------------------------------------------------------------- nothing that identifies


PHONE_SHAPE = re.compile(r"\d{3}\D{0,2}\d{4}|555")
DATE_SHAPE = re.compile(r"\d{4}-\d{1,2}|\d{1,2}/\d{1,2}|\d{1,2}:\d{2}|\b(19|20)\d{2}\b|T\d{2}")
RESEARCH_ID = re.compile(r"[a-z]{12}")
ID_COLUMNS = {"pair", "participant"}
ENUMS = {
    "side": {"a", "b"},
    "language": {"en", "es"},
    "engaged": {"true", "false"},
    "week_complete": {"true", "false"},
    "initiator": {"a", "b", "even", "none"},
}


def identifiers(app: FastAPI) -> list[str]:
    """Everything in the database that would identify someone or something if exported."""
    found = [*NAMES, *(n.split()[0] for n in NAMES), *(n.split()[1] for n in NAMES)]
    found += [str(i) for i in (*PEOPLE, *PAIRS)]
    found += [n[2:] for n in (ANA, BEA, CAL, DEE)] + [n[-4:] for n in (ANA, BEA, CAL, DEE)]
    with app.state.sessionmaker() as s:
        found += [c.twilio_call_sid for c in s.query(Call)]
        found += [m.recording_sid for m in s.query(CareTeamMessage)]
    return found


def scan(files: dict[str, str], forbidden: list[str]) -> None:
    for name, body in files.items():
        rows = list(csv.reader(io.StringIO(body)))
        header, cells = rows[0], rows[1:]
        for row in cells:
            for column, cell in zip(header, row, strict=True):
                where = f"{name}:{column}={cell!r}"
                for thing in forbidden:
                    assert thing.lower() not in cell.lower(), f"{where} holds {thing!r}"
                if name == "data-dictionary.csv":
                    continue  # prose written here, by us
                assert not PHONE_SHAPE.search(cell), f"{where} looks like a phone number"
                assert not DATE_SHAPE.search(cell), f"{where} looks like a date or a time"
                if column in ID_COLUMNS:
                    assert RESEARCH_ID.fullmatch(cell), f"{where} is not a research id"
                elif column in ENUMS:
                    assert cell in ENUMS[column], where
                else:  # a count or minutes, nothing else
                    assert re.fullmatch(r"\d+(\.\d+)?", cell), where
                    assert float(cell) < 100_000, where


def test_no_cell_holds_a_name_number_date_or_database_id(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    programme_history(history)
    bundle = build(app, clock)
    scan(bundle.files, identifiers(app))
    with zipfile.ZipFile(io.BytesIO(bundle.zipped())) as archive:
        assert sorted(archive.namelist()) == ["data-dictionary.csv", "pair_weeks.csv", "participants.csv"]
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)  # not the export's date
        scan({n: archive.read(n).decode() for n in archive.namelist()}, identifiers(app))


def test_the_same_key_gives_the_same_ids_and_another_key_unlinkable_ones(
    app: FastAPI, history: History, clock: FakeClock
) -> None:
    programme_history(history)
    once, again, other = (
        build(app, clock, "key one"),
        build(app, clock, "key one"),
        build(app, clock, "key two"),
    )
    assert once.files == again.files
    ids_one = {r["participant"] for r in table(once.files["participants.csv"])} | {
        r["pair"] for r in table(once.files["pair_weeks.csv"])
    }
    ids_two = {r["participant"] for r in table(other.files["participants.csv"])} | {
        r["pair"] for r in table(other.files["pair_weeks.csv"])
    }
    assert len(ids_one) == len(ids_two) == 6
    assert not ids_one & ids_two
    # rows are in research-id order, which another key shuffles
    a = research.ResearchIds("key one")
    assert a.participant(PEOPLE[0]) != a.pair(PEOPLE[0])  # kinds never share an id


# ---------------------------------------------------------------- the command line


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "cli-token")
    settings_module.get_settings.cache_clear()
    yield tmp_path
    settings_module.get_settings.cache_clear()


def peerline(*args: str) -> tuple[int, str]:
    cli = typer.Typer()
    cli.add_typer(export_cli, name="export")  # as app/cli.py registers it
    result = runner.invoke(cli, ["export", *args])
    return result.exit_code, result.output


def test_export_research_writes_the_files_and_makes_a_key_when_missing(
    app: FastAPI, history: History, cli_env: Path, programme: Programme
) -> None:
    programme_history(history)
    key = cli_env / "secrets" / "export.key"
    key.parent.mkdir()
    code, out = peerline("research", "--out", str(cli_env / "first" / "run"), "--key-file", str(key))
    assert code == 0, out
    assert sorted(p.name for p in (cli_env / "first" / "run").iterdir()) == [
        "data-dictionary.csv",
        "pair_weeks.csv",
        "participants.csv",
    ]
    assert "2 pairs, 4 participants" in out and "(made now)" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    events = [(e.actor, e.action, e.client_ip) for e in programme.rows(AuditEvent)]
    assert ("system", "export.research", "cli") in events

    code, out = peerline("research", "--out", str(cli_env / "second"), "--key-file", str(key))
    assert code == 0 and "(made now)" not in out
    first = (cli_env / "first" / "run" / "participants.csv").read_text()
    assert (cli_env / "second" / "participants.csv").read_text() == first
    code, _ = peerline("research", "--out", str(cli_env / "third"), "--key-file", str(cli_env / "other.key"))
    assert code == 0
    third = table((cli_env / "third" / "participants.csv").read_text())
    assert not {r["participant"] for r in third} & {r["participant"] for r in table(first)}
    code, _ = peerline("research", "--out", str(cli_env / "fourth"))  # a key used once, not kept
    assert code == 0 and not list(cli_env.glob("fourth/*.key"))
    scan(
        {p.name: p.read_text() for p in (cli_env / "first" / "run").iterdir()},
        identifiers(app),
    )


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("nonempty", ["--out", "{d}/full"], "not empty"),
        ("file", ["--out", "{d}/plain"], "is a file"),
        (None, ["--out", "{d}/out", "--key-file", "{d}/out/k.key"], "outside --out"),
        ("emptykey", ["--out", "{d}/out", "--key-file", "{d}/empty.key"], "is empty"),
        (None, ["--out", "{d}/out", "--key-file", "{d}/no/such/dir/k.key"], "--key-file"),
    ],
)
def test_export_research_refuses_with_one_line(
    history: History, cli_env: Path, setup: str | None, args: list[str], message: str
) -> None:
    if setup == "nonempty":
        (cli_env / "full").mkdir()
        (cli_env / "full" / "notes.txt").write_text("x")
    elif setup == "file":
        (cli_env / "plain").write_text("x")
    elif setup == "emptykey":
        (cli_env / "empty.key").write_text("\n")
    code, out = peerline("research", *(a.format(d=cli_env) for a in args))
    assert code == 2, out
    assert message in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "leak",
    [
        "pair,week\nabcdefghijkl,2026-07-01\n",
        "pair,week\nabcdefghijkl,617-555-0101\n",
        "pair,week\n9000001,1\n",
        "pair,calls\nabcdefghijkl,Anabel\n",
        "pair,calls\nabcdefghijkl,14:30\n",
    ],
)
def test_the_scan_itself_catches_a_leak(leak: str) -> None:
    with pytest.raises(AssertionError):
        scan({"pair_weeks.csv": leak}, ["Anabel", "9000001"])
