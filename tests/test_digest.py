"""The daily digest: counts only, sent through a real SMTP server, once a day per account."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from typer.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.context import Context
from app.db import make_engine, make_sessionmaker
from app.models import AttentionFlag, CareTeamMessage, DigestSent, Pair, Reminder, StaffUser
from app.scheduler import _digests_safely, send_digests, start_scheduler
from app.services.digest import Mailer, MailError
from app.settings import Settings
from ivr.vocab import ReminderState
from tests.conftest import ALL_TEST_NUMBERS, PUBLIC_BASE_URL, SECRET, FakeClock, Programme, Staff, free_port

ZONE = "America/New_York"
# the suite's clock reads 20:00 UTC: 15:00 in the programme's zone
HOUR = 15
# words the fixtures hold that an email must never carry
CONDITION = "diabetes"
NAMES = ("Ana", "Bea")


class Inbox:
    """An aiosmtpd handler: keeps what it is sent, or refuses it while `refuse` is set."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        parsed = message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, str]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


@pytest.fixture
def ctx(app: FastAPI, inbox: tuple[Inbox, str]) -> Context:
    base: Context = app.state.context
    settings = base.settings.model_copy(update={"smtp_url": inbox[1], "programme_timezone": ZONE})
    return dataclasses.replace(base, settings=settings)


@pytest.fixture
def programme_with_news(
    programme: Programme, staff: Staff, ana_and_bea: tuple[int, int, int], clock: FakeClock
) -> dict[str, int]:
    """Ana and Bea's pair (their notes name a condition), a message Ana left, the pair on the
    attention list, one reminder that could not be placed; the nurse wants a digest at 15:00."""
    ana, bea, pair_id = ana_and_bea
    now = clock()
    with programme.session() as db:
        pair = db.get(Pair, pair_id)
        assert pair is not None
        pair.notes = f"both live with type 2 {CONDITION}"
        db.add(
            CareTeamMessage(
                recording_sid="RE" + "1" * 32,
                participant_id=ana,
                recording_url=None,
                duration_seconds=30,
                received_at=now - timedelta(hours=2),
            )
        )
        db.add(
            AttentionFlag(pair_id=pair_id, period_start=now, reason="no contact for 2 weeks", raised_at=now)
        )
        db.add(
            Reminder(
                participant_id=bea,
                pair_id=pair_id,
                period_start=now - timedelta(days=7),
                state=ReminderState.FAILED,
                attempts=1,
                next_attempt_at=now,
                last_error="21211 invalid number",
                created_at=now - timedelta(hours=3),
                updated_at=now - timedelta(hours=3),
            )
        )
        nurse = db.get(StaffUser, staff.users["nurse"].id)
        assert nurse is not None
        nurse.digest_hour = HOUR
        db.commit()
    return {"ana": ana, "bea": bea, "pair": pair_id, "nurse": staff.users["nurse"].id}


def send(app: FastAPI, ctx: Context, smtp_url: str) -> Any:
    return send_digests(app.state.sessionmaker, ctx, Mailer.from_url(smtp_url).send)


def claims(programme: Programme) -> list[DigestSent]:
    return programme.rows(DigestSent)


def set_hour(programme: Programme, user_id: int, hour: int | None, *, disabled: bool = False) -> None:
    with programme.session() as db:
        user = db.get(StaffUser, user_id)
        assert user is not None
        user.digest_hour = hour
        if disabled:
            user.disabled_at = programme.clock()
        db.commit()


# ---------------------------------------------------------------- what the digest says


def test_a_digest_goes_through_a_real_mail_server_with_counts_and_a_link(
    app: FastAPI, ctx: Context, inbox: tuple[Inbox, str], programme_with_news: dict[str, int]
) -> None:
    handler, url = inbox
    report = send(app, ctx, url)

    assert report.sent == ["nurse@clinic.example.org"] and not report.failed
    (mail,) = handler.received
    assert handler.recipients == [["nurse@clinic.example.org"]]
    assert mail["To"] == "nurse@clinic.example.org"
    assert mail["From"] == ctx.settings.digest_from
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "text/plain"
    body = mail.get_content()
    assert "1 new message for the care team" in body
    assert "1 pair needs attention" in body
    assert "1 reminder call could not be placed" in body
    assert "In the last 24 hours" in body
    assert f"{PUBLIC_BASE_URL}/console/" in body
    assert "15:00" in body


def test_the_digest_names_no_one_and_carries_no_number_or_condition(
    app: FastAPI, ctx: Context, inbox: tuple[Inbox, str], programme_with_news: dict[str, int]
) -> None:
    handler, url = inbox
    send(app, ctx, url)
    (mail,) = handler.received
    whole = mail.as_string()
    body = mail.get_content()
    for name in NAMES:
        assert name not in whole
    assert CONDITION not in whole.lower()
    for number in ALL_TEST_NUMBERS:
        local = number[2:]  # 6175550101
        for form in (local, local[3:], f"{local[3:6]}-{local[6:]}", f"({local[:3]})"):
            assert form not in whole, form
        assert local[-4:] not in body
    # and no row ids: the only figures in the body are the counts, the date and the hour
    assert "pair 1" not in body.lower() and "#" not in body


def test_an_earlier_digest_starts_the_count_of_new_messages(
    app: FastAPI,
    ctx: Context,
    inbox: tuple[Inbox, str],
    programme: Programme,
    clock: FakeClock,
    programme_with_news: dict[str, int],
) -> None:
    handler, url = inbox
    send(app, ctx, url)
    clock.advance(hours=20)
    with programme.session() as db:
        for n in range(2):
            db.add(
                CareTeamMessage(
                    recording_sid=f"RE{n:032d}",
                    participant_id=programme_with_news["bea"],
                    received_at=clock(),
                )
            )
        db.commit()
    clock.advance(hours=4)  # the next day, 15:00 again

    send(app, ctx, url)

    second = handler.received[-1].get_content()
    assert "Since your last summary" in second
    assert "2 new messages for the care team" in second
    assert "no reminder call failed to go out" in second
    assert "1 pair needs attention" in second


# ---------------------------------------------------------------- once a day


def test_the_digest_goes_once_however_often_the_job_runs(
    app: FastAPI,
    ctx: Context,
    inbox: tuple[Inbox, str],
    programme: Programme,
    clock: FakeClock,
    programme_with_news: dict[str, int],
) -> None:
    handler, url = inbox
    send(app, ctx, url)
    clock.advance(minutes=5)
    again = send(app, ctx, url)
    clock.advance(minutes=50)
    send(app, ctx, url)

    assert len(handler.received) == 1
    assert again.sent == [] and again.failed == []
    (claim,) = claims(programme)
    assert claim.day == "2026-11-17" and claim.staff_user_id == programme_with_news["nurse"]


def test_two_processes_at_the_same_moment_send_one_digest(
    settings: Settings, ctx: Context, inbox: tuple[Inbox, str], programme_with_news: dict[str, int]
) -> None:
    """Both find the nurse due before either claims: only the database can keep it to one."""
    handler, url = inbox
    both_looked = threading.Barrier(2)
    engines = [make_engine(settings.database_url) for _ in range(2)]
    reports: list[Any] = []
    errors: list[BaseException] = []

    def process(engine: Any) -> None:
        sessions = make_sessionmaker(engine)
        opened = 0

        def session() -> Any:
            nonlocal opened
            opened += 1
            if opened == 2:  # the first session found who is due; the second claims
                both_looked.wait(timeout=10)
            return sessions()

        try:
            reports.append(send_digests(session, ctx, Mailer.from_url(url).send))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=process, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in engines:
        engine.dispose()

    assert not errors
    assert len(handler.received) == 1
    assert sorted((len(r.sent), r.skipped) for r in reports) == [(0, 1), (1, 0)]


def test_only_accounts_whose_hour_it_is_and_that_are_not_disabled_get_one(
    app: FastAPI,
    ctx: Context,
    inbox: tuple[Inbox, str],
    programme: Programme,
    staff: Staff,
    programme_with_news: dict[str, int],
) -> None:
    handler, url = inbox
    set_hour(programme, staff.users["staff"].id, HOUR + 1)
    set_hour(programme, staff.users["admin"].id, HOUR, disabled=True)

    report = send(app, ctx, url)

    assert report.sent == ["nurse@clinic.example.org"]
    assert [r for (r,) in handler.recipients] == ["nurse@clinic.example.org"]


def test_no_one_who_did_not_ask_gets_a_digest(
    app: FastAPI, ctx: Context, inbox: tuple[Inbox, str], programme: Programme, staff: Staff
) -> None:
    handler, url = inbox
    report = send(app, ctx, url)
    assert report.sent == [] and handler.received == [] and claims(programme) == []


# ---------------------------------------------------------------- when mail fails


def test_a_refusing_mail_server_leaves_the_digest_to_the_next_run(
    app: FastAPI,
    ctx: Context,
    inbox: tuple[Inbox, str],
    programme: Programme,
    clock: FakeClock,
    programme_with_news: dict[str, int],
) -> None:
    handler, url = inbox
    handler.refuse = True

    refused = send(app, ctx, url)

    assert refused.sent == []
    ((address, why),) = refused.failed
    assert address == "nurse@clinic.example.org" and "451" in why
    assert claims(programme) == []

    handler.refuse = False
    clock.advance(minutes=5)
    retried = send(app, ctx, url)
    assert retried.sent == ["nurse@clinic.example.org"] and len(handler.received) == 1


def test_an_unreachable_mail_server_is_logged_without_the_address_and_retried(
    app: FastAPI,
    ctx: Context,
    inbox: tuple[Inbox, str],
    programme: Programme,
    caplog: pytest.LogCaptureFixture,
    programme_with_news: dict[str, int],
) -> None:
    nowhere = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    )
    with caplog.at_level("INFO", logger="app.scheduler"):
        _digests_safely(app.state.sessionmaker, nowhere)  # the scheduler's job: never raises

    assert claims(programme) == []
    (line,) = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert "next run tries again" in line
    assert not [r for r in caplog.records if "nurse@" in r.getMessage()]

    _, url = inbox
    assert send(app, ctx, url).sent == ["nurse@clinic.example.org"]


def test_a_password_is_never_sent_to_a_remote_server_in_the_clear(
    monkeypatch: pytest.MonkeyPatch, inbox: tuple[Inbox, str]
) -> None:
    handler, url = inbox
    # the test server offers no STARTTLS; pretend it is on another machine
    monkeypatch.setattr(Mailer, "_loopback", lambda self: False)
    mailer = Mailer.from_url(url.replace("smtp://", "smtp://digest:s3cret@"))
    message = EmailMessage()
    message["To"], message["From"], message["Subject"] = "nurse@clinic.example.org", "p@example.org", "x"
    with pytest.raises(MailError, match="does not offer STARTTLS"):
        mailer.send(message)
    assert handler.received == []


# ---------------------------------------------------------------- inside `peerline serve`


def test_the_scheduler_runs_digests_only_when_smtp_url_is_set(app: FastAPI, ctx: Context) -> None:
    with_mail = start_scheduler(app.state.sessionmaker, ctx)
    without = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"smtp_url": None}))
    no_mail = start_scheduler(app.state.sessionmaker, without)
    try:
        assert with_mail.get_job("staff-digests") is not None
        assert no_mail.get_job("staff-digests") is None
        assert no_mail.get_job("reminder-sweep") is not None
    finally:
        with_mail.shutdown(wait=False)
        no_mail.shutdown(wait=False)


# ---------------------------------------------------------------- `peerline digest send`

runner = CliRunner()


@pytest.fixture
def command_line(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC_BASE_URL)
    monkeypatch.setenv("PROGRAMME_TIMEZONE", ZONE)
    monkeypatch.delenv("SMTP_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield
    settings_module.get_settings.cache_clear()


AT = "2026-11-17T15:10"


def test_dry_run_prints_what_would_go_to_whom_and_sends_nothing(
    command_line: None, inbox: tuple[Inbox, str], programme: Programme, programme_with_news: dict[str, int]
) -> None:
    handler, _ = inbox
    result = runner.invoke(cli, ["digest", "send", "--dry-run", "--at", AT])

    assert result.exit_code == 0, result.output
    assert "would send to nurse@clinic.example.org: 1 new message for the care team" in result.output
    assert "Subject: Peerline:" in result.output
    assert handler.received == [] and claims(programme) == []


def test_dry_run_at_an_hour_nobody_chose_says_so(
    command_line: None, programme_with_news: dict[str, int]
) -> None:
    result = runner.invoke(cli, ["digest", "send", "--dry-run", "--at", "2026-11-17T09:00"])
    assert result.exit_code == 0
    assert "no digest is due at 2026-11-17 09:00 America/New_York" in result.output


def test_sending_without_smtp_url_is_one_line_and_exit_2(
    command_line: None, programme_with_news: dict[str, int]
) -> None:
    result = runner.invoke(cli, ["digest", "send", "--at", AT])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: SMTP_URL is not set, so no digest can be sent (--dry-run shows what would be)"
    )


def test_send_from_the_command_line_then_again_sends_once(
    command_line: None,
    monkeypatch: pytest.MonkeyPatch,
    inbox: tuple[Inbox, str],
    programme: Programme,
    programme_with_news: dict[str, int],
) -> None:
    handler, url = inbox
    monkeypatch.setenv("SMTP_URL", url)
    settings_module.get_settings.cache_clear()

    first = runner.invoke(cli, ["digest", "send", "--at", AT])
    second = runner.invoke(cli, ["digest", "send", "--at", AT])

    assert first.exit_code == 0 and "sent the digest to nurse@clinic.example.org" in first.output
    assert second.exit_code == 0 and "no digest is due" in second.output
    assert len(handler.received) == 1
    assert "1 pair needs attention" in handler.received[0].get_content()


def test_a_failed_send_from_the_command_line_exits_1_with_a_readable_line(
    command_line: None, monkeypatch: pytest.MonkeyPatch, programme_with_news: dict[str, int]
) -> None:
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    settings_module.get_settings.cache_clear()

    result = runner.invoke(cli, ["digest", "send", "--at", AT])

    assert result.exit_code == 1
    assert (
        "error: the digest to nurse@clinic.example.org was not sent: ConnectionRefusedError" in result.output
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--at", "tomorrow"], {"SMTP_URL": "smtp://127.0.0.1:25"}, "--at 'tomorrow' is not a date and time"),
        ([], {"SMTP_URL": "smtp://"}, "SMTP_URL must look like smtp://"),
        ([], {"SMTP_URL": "smtp://mail.example.org:port"}, "SMTP_URL has a port that is not a number"),
        ([], {"SMTP_URL": "mailto:x@example.org"}, "configuration"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    command_line: None, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    result = runner.invoke(cli, ["digest", "send", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
