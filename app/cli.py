"""The `peerline` command line. Errors are one readable line and exit code 2."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.db import make_engine, make_sessionmaker
from app.models import Pair, Participant
from app.services import audit
from app.services import participants as participant_service
from app.services.errors import ServiceError
from app.settings import ConfigError, Settings, get_settings

cli = typer.Typer(
    help="Peerline: reciprocal peer support by telephone.", no_args_is_help=True, add_completion=False
)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
participant_cli = typer.Typer(help="Enrol and list participants.", no_args_is_help=True)
pair_cli = typer.Typer(help="Make and end pairs.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(participant_cli, name="participant")
reminders_cli = typer.Typer(help="Reminder calls for quiet pairs.", no_args_is_help=True)
user_cli = typer.Typer(help="Staff accounts for the console and API.", no_args_is_help=True)
cli.add_typer(user_cli, name="user")
cli.add_typer(pair_cli, name="pair")
cli.add_typer(reminders_cli, name="reminders")


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        fail(f"configuration: {exc}")


@contextmanager
def session() -> Iterator[tuple[Session, Settings, PhoneVault]]:
    settings = settings_or_fail()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as db:
            yield db, settings, PhoneVault.from_secret(settings.secret_key)
    except ServiceError as exc:
        fail(str(exc))
    except Exception as exc:  # a readable line, never a traceback
        if isinstance(exc, typer.Exit):
            raise
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'failed'}")
    finally:
        engine.dispose()


def _audit(db: Session, action: str, target: str) -> None:
    """Operators at the command line act as the system, from the machine itself."""
    audit.record(db, actor=audit.SYSTEM, action=action, target=target, client_ip="cli", at=datetime.now(UTC))


def participant_json(p: Participant, vault: PhoneVault) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "phone": vault.decrypt(p.phone_ciphertext) if p.phone_ciphertext else None,
        "timezone": p.timezone,
        "quiet_hours": p.quiet_hours,
        "language": p.language,
        "status": p.status,
        "pair_id": p.active_pair_id,
    }


def pair_json(pair: Pair) -> dict[str, Any]:
    return {
        "id": pair.id,
        "participant_ids": [pair.participant_a_id, pair.participant_b_id],
        "started_at": pair.started_at.isoformat(),
        "ended_at": pair.ended_at.isoformat() if pair.ended_at else None,
        "last_contact_at": pair.last_contact_at.isoformat() if pair.last_contact_at else None,
    }


def emit(record: dict[str, Any], as_json: bool, summary: str) -> None:
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        typer.echo(summary)
        typer.echo(record["id"])


# ---------------------------------------------------------------- db


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from app.migrate import upgrade

    settings = settings_or_fail()
    try:
        upgrade(settings.database_url, revision)
    except Exception as exc:
        fail(f"migration failed: {str(exc).splitlines()[0]}")
    typer.echo(f"database is at revision {revision}")


# ---------------------------------------------------------------- participants and pairs


@participant_cli.command("add")
def participant_add(
    name: Annotated[str, typer.Option(help="name or alias")],
    phone: Annotated[str, typer.Option(help="home phone number")],
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "America/New_York",
    quiet_hours: Annotated[str | None, typer.Option(help="e.g. 21:00-09:00, in their own time")] = None,
    language: str = "en",
    as_json: Annotated[bool, typer.Option("--json", help="print the whole record")] = False,
) -> None:
    """Enrol a participant; prints the new id on the last line."""
    with session() as (db, settings, vault):
        person = participant_service.enrol(
            db,
            vault,
            name=name,
            phone=phone,
            timezone=timezone,
            quiet_hours=quiet_hours,
            language=language,
            region=settings.default_region,
            now=datetime.now(UTC),
        )
        db.commit()
        emit(participant_json(person, vault), as_json, f"enrolled participant {person.id} ({person.name})")


@participant_cli.command("list")
def participant_list() -> None:
    """List participants: id, name, status, pair, time zone, quiet hours."""
    from sqlalchemy import select

    with session() as (db, _settings, _vault):
        for p in db.scalars(select(Participant).order_by(Participant.id)):
            pair = p.active_pair_id or "-"
            typer.echo(f"{p.id}\t{p.name}\t{p.status}\tpair {pair}\t{p.timezone}\t{p.quiet_hours or ''}")


@participant_cli.command("remove")
def participant_remove(
    participant_id: int,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Remove a participant's number on request: erases it, ends the pair, cancels reminders."""
    with session() as (db, _settings, _vault):
        person = participant_service.get(db, participant_id)
        if not yes and not typer.confirm(
            f"Erase the phone number of participant {person.id} ({person.name}), end their pair and cancel "
            "their reminders? Call records stay, without the number."
        ):
            fail("nothing was removed")
        participant_service.remove(db, person, now=datetime.now(UTC))
        _audit(db, "participant.delete", f"participant:{person.id}")
        db.commit()
        typer.echo(f"removed the number of participant {person.id}; they are now withdrawn")


@pair_cli.command("add")
def pair_add(
    first: int,
    second: int,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole record")] = False,
) -> None:
    """Pair two participants; prints the new pair id on the last line."""
    with session() as (db, _settings, _vault):
        pair = participant_service.make_pair(db, first, second, now=datetime.now(UTC))
        db.commit()
        emit(pair_json(pair), as_json, f"paired participants {first} and {second} as pair {pair.id}")


@pair_cli.command("list")
def pair_list(
    active_only: Annotated[bool, typer.Option("--active", help="only active pairs")] = False,
) -> None:
    """List pairs: id, partners, since, last contact, ended."""
    from sqlalchemy import select

    with session() as (db, _settings, _vault):
        stmt = select(Pair).order_by(Pair.id)
        if active_only:
            stmt = stmt.where(Pair.ended_at.is_(None))
        for p in db.scalars(stmt):
            last = p.last_contact_at.strftime("%Y-%m-%d") if p.last_contact_at else "never"
            ended = f"ended {p.ended_at:%Y-%m-%d}" if p.ended_at else "active"
            typer.echo(
                f"{p.id}\t{p.participant_a_id} & {p.participant_b_id}\tsince {p.started_at:%Y-%m-%d}"
                f"\tlast contact {last}\t{ended}"
            )


@pair_cli.command("end")
def pair_end(pair_id: int) -> None:
    """End a pair: both partners become free to be paired again; history stays."""
    with session() as (db, _settings, _vault):
        pair = participant_service.end_pair(
            db, participant_service.get_pair(db, pair_id), now=datetime.now(UTC)
        )
        _audit(db, "pair.end", f"pair:{pair.id}")
        db.commit()
        typer.echo(f"ended pair {pair.id}")


@cli.command("calls")
def calls_list(
    pair: Annotated[int | None, typer.Option("--pair", help="only this pair's calls")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
) -> None:
    """The call log, newest first: when, kind, who called, talk time, outcome."""
    from app.services import queries

    with session() as (db, _settings, _vault):
        if pair is not None:
            participant_service.get_pair(db, pair)
        for c in queries.calls(db, pair_id=pair, limit=limit):
            typer.echo(
                f"{c.id}\t{c.started_at:%Y-%m-%d %H:%M}\t{c.kind}\tpair {c.pair_id or '-'}"
                f"\tby {c.initiator_id or '-'}\t{c.duration_seconds or 0}s\t{c.outcome}"
            )


# ---------------------------------------------------------------- staff accounts


@user_cli.command("add")
def user_add(
    email: str,
    role: Annotated[str, typer.Option(help="nurse, staff or admin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole record")] = False,
) -> None:
    """Create a staff account; prints the new id on the last line."""
    from app.services import staff

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with session() as (db, _settings, _vault):
        user = staff.create_user(db, email=email, password=password, role=role, now=datetime.now(UTC))
        _audit(db, "user.create", f"staff_user:{user.id}")
        db.commit()
        record = {"id": user.id, "email": user.email, "role": user.role}
        emit(record, as_json, f"created {user.role} account {user.id} for {user.email}")


# ---------------------------------------------------------------- reminders


@reminders_cli.command("run")
def reminders_run() -> None:
    """One reminder sweep, then exit (0 also when another sweep holds the work)."""
    from app.context import Context, system_clock
    from app.scheduler import run_sweep
    from app.services.policy import Policy

    settings = settings_or_fail()
    engine = make_engine(settings.database_url)
    try:
        ctx = Context(
            settings,
            PhoneVault.from_secret(settings.secret_key),
            system_clock,
            Policy.from_settings(settings),
        )
        report = run_sweep(make_sessionmaker(engine), ctx)
    except Exception as exc:
        fail(f"reminder sweep failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        engine.dispose()
    typer.echo(f"reminder sweep: {report}")


@cli.command("fake-twilio")
def fake_twilio(
    port: Annotated[int, typer.Option(help="port for the fake Calls API")] = 8099,
    answer: Annotated[bool, typer.Option(help="ring this terminal for each call placed")] = True,
) -> None:
    """A local fake of Twilio's Calls API; set TWILIO_API_URL=http://127.0.0.1:PORT to use it."""
    import httpx
    import uvicorn

    from app.fake_twilio import FakeTwilio, PlacedCall, create_fake_twilio
    from app.telephone import Telephone
    from app.terminal_phone import TerminalParty
    from ivr.phone import masked

    settings = settings_or_fail()
    fake = FakeTwilio()
    ringing = threading.Lock()

    def ring(call: PlacedCall) -> None:
        with ringing, httpx.Client(timeout=20) as client:
            typer.secho(f"\n☎  Peerline is calling {masked(call.to)} (a reminder)", fg=typer.colors.YELLOW)
            phone_ = Telephone(
                client,
                public_base_url=settings.public_base_url,
                auth_token=settings.twilio_auth_token,
                programme_number=settings.programme_number,
            )
            phone_.answer(
                call.sid,
                call.to,
                call.url,
                TerminalParty("You"),
                TerminalParty("Your partner"),
                status_callback=call.status_callback,
            )
            typer.echo("The reminder call has ended.")

    fake.on_call = ring if answer else None
    typer.echo(f"Fake Twilio listening on http://127.0.0.1:{port} (set TWILIO_API_URL to it)")
    uvicorn.run(create_fake_twilio(fake), host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------- serve and phone


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Run the web service (webhooks, API, console)."""
    import uvicorn

    settings_or_fail()
    typer.echo(f"Peerline listening on http://{host}:{port}")
    uvicorn.run("app.main:app", host=host, port=port, proxy_headers=True, log_level="info")


@cli.command()
def phone(
    from_number: Annotated[str, typer.Option("--from", help="the number you are calling from")],
    url: Annotated[str | None, typer.Option(help="where the service runs (default PUBLIC_BASE_URL)")] = None,
) -> None:
    """A telephone in the terminal: call the service as a participant would."""
    import httpx

    from app.telephone import Telephone
    from app.terminal_phone import TerminalParty

    settings = settings_or_fail()
    typer.echo("Calling Peerline from your phone. (h then Enter hangs up)")
    with httpx.Client(timeout=20) as client:
        phone_ = Telephone(
            client,
            public_base_url=settings.public_base_url,
            target_base_url=url,
            auth_token=settings.twilio_auth_token,
            programme_number=settings.programme_number,
        )
        try:
            phone_.call(from_number, TerminalParty("You"), TerminalParty("Your partner"))
        except httpx.HTTPError as exc:
            fail(f"could not reach the service at {url or settings.public_base_url}: {exc}")
        except AssertionError as exc:
            fail(str(exc))
    typer.echo("The call has ended.")


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # each request the terminal phone sends is not news to the person holding it
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
