"""The `peerline` command line. Errors are one readable line and exit code 2."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from app.cli_common import fail, fail_unexpected, settings_or_fail
from app.cli_common import parse_at as _parse_at
from app.cli_digest import digest_cli
from app.cli_export import export_cli
from app.crypto import PhoneVault
from app.db import make_engine, make_sessionmaker
from app.models import Pair, Participant
from app.services import audit, queries
from app.services import participants as participant_service
from app.services.audit import Action
from app.services.errors import ServiceError
from app.settings import Settings
from ivr.quiet_hours import zone
from ivr.vocab import SUPPORTED_LANGUAGES, UnsupportedLanguage, language_of

cli = typer.Typer(
    help="Peerline: reciprocal peer support by telephone.", no_args_is_help=True, add_completion=False
)
db_cli = typer.Typer(help="Database migrations, backups and restores.", no_args_is_help=True)
keys_cli = typer.Typer(help="The secret key that protects stored phone numbers.", no_args_is_help=True)
participant_cli = typer.Typer(help="Enrol and list participants.", no_args_is_help=True)
pair_cli = typer.Typer(help="Make and end pairs.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(participant_cli, name="participant")
reminders_cli = typer.Typer(help="Reminder calls for quiet pairs.", no_args_is_help=True)
user_cli = typer.Typer(help="Staff accounts for the console and API.", no_args_is_help=True)
cli.add_typer(user_cli, name="user")
cli.add_typer(pair_cli, name="pair")
cli.add_typer(reminders_cli, name="reminders")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(export_cli, name="export")
cli.add_typer(digest_cli, name="digest")


def in_their_words(message: str, words: dict[str, str]) -> str:
    """A service's "quiet_hours: …" in the words the user typed: "--quiet-hours: …".

    Services name fields as the API does; at the command line the same field is an option
    (or an argument), and an error should point at what the person can change."""
    field, sep, rest = message.partition(": ")
    if not sep or field not in words:
        return message
    return f"{words[field]}: {rest}" if words[field] else rest


@contextmanager
def session(words: dict[str, str] | None = None) -> Iterator[tuple[Session, Settings, PhoneVault]]:
    """One transaction per command, as the API has one per request: committed when the
    command's block ends, rolled back when it fails, so a refused command leaves no trace
    but its error line. Print what was made after the block, once it is stored. `words`
    maps the services' field names to the command's options (see in_their_words)."""
    settings = settings_or_fail()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as db:
            yield db, settings, PhoneVault.from_secret(settings.secret_key, settings.secret_key_previous)
            db.commit()
    except ServiceError as exc:
        fail(in_their_words(str(exc), words or {}))
    except Exception as exc:  # a readable line, never a traceback
        if isinstance(exc, typer.Exit):
            raise
        fail_unexpected(exc, "command")
    finally:
        engine.dispose()


def _audit(db: Session, action: Action, target: str | None = None) -> None:
    """Operators at the command line act as the system, from the machine itself; their reads
    and changes go under the same actions as the API's and the console's."""
    audit.record(
        db,
        actor=audit.SYSTEM,
        action=action,
        target=target,
        client_ip=audit.CLI_ADDRESS,
        at=datetime.now(UTC),
    )


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


def table(header: list[str], rows: list[list[str]], empty: str) -> None:
    """A list as tab-separated columns under a header (`column -t -s $'\t'` aligns them, and
    `cut -f` still picks one); `empty` says so in words when there is nothing to list."""
    if not rows:
        typer.echo(empty)
        return
    for line in (header, *rows):
        typer.echo("\t".join(line))


def local_time(moment: datetime | None, settings: Settings, never: str = "never") -> str:
    """A stored time in the programme's zone, with the zone said: "2026-11-17 15:00 EST"."""
    if moment is None:
        return never
    return moment.astimezone(zone(settings.programme_timezone)).strftime("%Y-%m-%d %H:%M %Z")


def named(person_id: int | None, people: dict[int, Participant]) -> str:
    """A participant as "Ana (#1)": the name a person knows beside the id a command takes."""
    if person_id is None:
        return "-"
    person = people.get(person_id)
    return f"{person.name} (#{person_id})" if person is not None else f"#{person_id}"


# services' field names as `participant add` spells its options
ENROL_WORDS = {
    "name": "--name",
    "phone": "--phone",
    "timezone": "--timezone",
    "quiet_hours": "--quiet-hours",
    "language": "--language",
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


@db_cli.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="where to write the backup")],
    force: Annotated[bool, typer.Option("--force", help="replace PATH if it exists")] = False,
) -> None:
    """Back up the database: SQLite to a file, consistent while serving; PostgreSQL: prints
    the pg_dump command (without the password)."""
    from app.services.backup import BackupError, backup

    settings = settings_or_fail()
    try:
        outcome = backup(settings.database_url, path, force=force)
    except BackupError as exc:
        fail(str(exc))
    if outcome.command is not None:
        typer.echo(outcome.message, err=True)
        typer.echo(outcome.command)
    else:
        typer.echo(outcome.message)


@db_cli.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="a backup made by `peerline db backup` (or pg_dump)")],
    force: Annotated[bool, typer.Option("--force", help="replace a database that holds data")] = False,
) -> None:
    """Restore a backup into DATABASE_URL; a database that holds data is refused without --force.
    Stop the service first."""
    from app.services.backup import BackupError, restore

    settings = settings_or_fail()
    try:
        outcome = restore(settings.database_url, path, force=force)
    except BackupError as exc:
        fail(str(exc))
    typer.echo(outcome.message)


# ---------------------------------------------------------------- keys


@keys_cli.command("rotate")
def keys_rotate(
    new_secret_file: Annotated[
        Path, typer.Option("--new-secret-file", help="a file holding the new secret on one line")
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="rows per committed batch")] = 200,
) -> None:
    """Re-encrypt every stored number and recompute its blind index under a new secret.

    The old secret is SECRET_KEY (or SECRET_KEY_PREVIOUS). Safe to run while the service
    answers calls, and to run again after a crash: it finishes what is left. Afterwards set
    SECRET_KEY to the new secret and restart (see docs/operations.md).
    """
    from app.services.keys import RotationError, check_new_secret, old_secrets, rotate

    settings = settings_or_fail()
    try:
        new_secret = check_new_secret(new_secret_file.read_text())
        olds = old_secrets(settings.secret_key, settings.secret_key_previous, new_secret)
    except OSError as exc:
        fail(f"cannot read {new_secret_file}: {exc.strerror or exc}")
    except RotationError as exc:
        fail(str(exc))
    engine = make_engine(settings.database_url)
    try:
        report = rotate(
            make_sessionmaker(engine),
            [PhoneVault.from_secret(secret) for secret in olds],
            PhoneVault.from_secret(new_secret),
            batch_size=batch_size,
        )
    except Exception as exc:  # one line; running the command again finishes the job
        fail(f"rotation stopped ({type(exc).__name__}); run the command again to finish it")
    finally:
        engine.dispose()
    typer.echo(f"rotation done: {report}")
    if report.numbers_unreadable:
        typer.echo(
            f"warning: {report.numbers_unreadable} numbers are under neither key and were left as they are",
            err=True,
        )
    typer.echo(
        "Next: set SECRET_KEY to the new secret on every server and restart them (docs/operations.md)."
    )


# ---------------------------------------------------------------- participants and pairs


@participant_cli.command("add")
def participant_add(
    name: Annotated[str, typer.Option(help="name or alias")],
    phone: Annotated[str, typer.Option(help="home phone number")],
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "America/New_York",
    quiet_hours: Annotated[str | None, typer.Option(help="e.g. 21:00-09:00, in their own time")] = None,
    language: Annotated[str, typer.Option(help=f"one of: {', '.join(SUPPORTED_LANGUAGES)}")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="print the whole record")] = False,
) -> None:
    """Enrol a participant; prints the new id on the last line."""
    # refused before anything is opened: one line, exit 2, naming the supported codes
    try:
        language = language_of(language).value
    except UnsupportedLanguage as exc:
        fail(f"--language: {exc}")
    with session(ENROL_WORDS) as (db, settings, vault):
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
        _audit(db, Action.PARTICIPANT_CREATE, f"participant:{person.id}")
        record = participant_json(person, vault)
    emit(record, as_json, f"enrolled participant {person.id} ({person.name})")


@participant_cli.command("list")
def participant_list() -> None:
    """List participants: id, name, status, pair and partner, time zone, quiet hours, language."""
    with session() as (db, _settings, _vault):
        found = queries.all_participants(db)
        pairs = queries.pairs_by_id(db, [p.active_pair_id for p in found if p.active_pair_id])
        people = {p.id: p for p in found}
        _audit(db, Action.PARTICIPANTS_READ, f"{len(found)} participants")

    def pair_of(p: Participant) -> str:
        pair = pairs.get(p.active_pair_id) if p.active_pair_id else None
        if pair is None:
            return "no pair"
        partner = pair.participant_b_id if pair.participant_a_id == p.id else pair.participant_a_id
        return f"pair {pair.id} with {named(partner, people)}"

    table(
        ["ID", "NAME", "STATUS", "PAIR", "TIME ZONE", "QUIET HOURS", "LANGUAGE"],
        [
            [str(p.id), p.name, p.status, pair_of(p), p.timezone, p.quiet_hours or "-", p.language]
            for p in found
        ],
        "No participants yet: `peerline participant add` enrols one.",
    )


@participant_cli.command("remove")
def participant_remove(
    participant_id: int,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Remove a participant's number on request: erases it and every trace of it (the caller-ID
    index on her calls, keyed-ID lockout rows), ends the pair, cancels reminders. Call records
    stay, without any number."""
    if not yes:
        # asked between two transactions: on SQLite an open one holds the write lock, and live
        # calls must not wait while the operator makes up their mind
        with session() as (db, _settings, _vault):
            name = participant_service.get(db, participant_id).name
        if not typer.confirm(
            f"Erase the phone number of participant {participant_id} ({name}) and every trace of it, end "
            "their pair and cancel their reminders? Call records stay, without any number."
        ):
            # a "no" is an answer, not an error: nothing failed, so the exit status is 0
            typer.echo("nothing was removed")
            return
    with session() as (db, _settings, vault):
        person = participant_service.remove(
            db, vault, participant_service.get(db, participant_id), now=datetime.now(UTC)
        )
        _audit(db, Action.PARTICIPANT_DELETE, f"participant:{person.id}")
    typer.echo(f"removed the number of participant {person.id} and every trace of it; they are now withdrawn")


@pair_cli.command("add")
def pair_add(
    first: int,
    second: int,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole record")] = False,
) -> None:
    """Pair two participants; prints the new pair id on the last line."""
    # "participant_ids: …" names the API's field; here the two ids are the arguments themselves
    with session({"participant_ids": ""}) as (db, _settings, _vault):
        pair = participant_service.make_pair(db, first, second, now=datetime.now(UTC))
        _audit(db, Action.PAIR_CREATE, f"pair:{pair.id}")
        record = pair_json(pair)
    emit(record, as_json, f"paired participants {first} and {second} as pair {pair.id}")


@pair_cli.command("list")
def pair_list(
    active_only: Annotated[bool, typer.Option("--active", help="only active pairs")] = False,
) -> None:
    """List pairs: id, partners (names and ids), since, last contact, active or ended."""
    with session() as (db, settings, _vault):
        found = queries.all_pairs(db, active_only=active_only)
        people = queries.participants_by_id(
            db, [i for p in found for i in (p.participant_a_id, p.participant_b_id)]
        )
        _audit(db, Action.PAIRS_READ, f"{len(found)} pairs")
    table(
        ["ID", "PARTNERS", "SINCE", "LAST CONTACT", "STATUS"],
        [
            [
                str(p.id),
                f"{named(p.participant_a_id, people)} & {named(p.participant_b_id, people)}",
                local_time(p.started_at, settings),
                local_time(p.last_contact_at, settings),
                f"ended {local_time(p.ended_at, settings)}" if p.ended_at else "active",
            ]
            for p in found
        ],
        "No active pairs." if active_only else "No pairs yet: `peerline pair add ID ID` makes one.",
    )


@pair_cli.command("end")
def pair_end(pair_id: int) -> None:
    """End a pair: both partners become free to be paired again; history stays."""
    with session() as (db, _settings, _vault):
        pair = participant_service.end_pair(
            db, participant_service.get_pair(db, pair_id), now=datetime.now(UTC)
        )
        _audit(db, Action.PAIR_END, f"pair:{pair.id}")
    typer.echo(f"ended pair {pair.id}")


@cli.command("calls")
def calls_list(
    pair: Annotated[int | None, typer.Option("--pair", help="only this pair's calls")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
) -> None:
    """The call log, newest first: when, kind, pair, who called, talk time, what happened."""
    from app.services import labels

    with session() as (db, settings, _vault):
        if pair is not None:
            participant_service.get_pair(db, pair)
        found = queries.calls(db, pair_id=pair, limit=limit)
        people = queries.participants_by_id(db, [c.initiator_id for c in found if c.initiator_id])
        what = {c.id: labels.call_label(c) for c in found}
        _audit(db, Action.CALLS_READ, f"pair:{pair}" if pair is not None else "all")
    table(
        ["ID", "STARTED", "KIND", "PAIR", "CALLER", "TALK", "WHAT HAPPENED"],
        [
            [
                str(c.id),
                local_time(c.started_at, settings),
                str(c.kind),
                str(c.pair_id or "-"),
                c.staff_initiator or named(c.initiator_id, people),
                labels.duration(c.duration_seconds) if c.duration_seconds else "-",
                what[c.id],
            ]
            for c in found
        ],
        "No calls yet." if pair is None else f"No calls for pair {pair} yet.",
    )


# ---------------------------------------------------------------- staff accounts


def _new_password(password_stdin: bool, email: str) -> str:
    """The new password, checked against the rules before it is asked for a second time (one
    typo in a long phrase should not cost typing it twice again). From stdin: one line, checked."""
    from app.services import passwords

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        problem = passwords.password_problem(password, email=email)
        if problem:
            fail(f"password: {problem}")
        return password
    for _ in range(3):
        password = str(typer.prompt("Password", hide_input=True))
        problem = passwords.password_problem(password, email=email)
        if problem:
            typer.secho(f"That password will not do: {problem}.", fg=typer.colors.YELLOW, err=True)
            continue
        if str(typer.prompt("Repeat the password", hide_input=True)) != password:
            typer.secho("The two entries were not the same.", fg=typer.colors.YELLOW, err=True)
            continue
        return password
    fail("password: no acceptable password was given")


@user_cli.command("add")
def user_add(
    email: str,
    role: Annotated[str, typer.Option(help="nurse, staff or admin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole record")] = False,
) -> None:
    """Create a staff account; prints the new id on the last line.

    Passwords: 12 to 128 characters, not a commonly used one (NIST SP 800-63B)."""
    from app.services import staff

    try:
        address = staff.normalise_email(email)
        staff.parse_role(role)
    except ServiceError as exc:
        fail(in_their_words(str(exc), {"role": "--role"}))
    password = _new_password(password_stdin, address)
    # hashed before the transaction opens: on SQLite an open one holds the writer lock
    password_hash = staff.hash_password(password)
    with session() as (db, _settings, _vault):
        user = staff.create_user(
            db,
            email=address,
            password=password,
            password_hash=password_hash,
            role=role,
            now=datetime.now(UTC),
        )
        _audit(db, Action.USER_CREATE, f"staff_user:{user.id}")
        record = {"id": user.id, "email": user.email, "role": user.role}
    emit(record, as_json, f"created {user.role} account {user.id} for {user.email}")


@user_cli.command("list")
def user_list() -> None:
    """List staff accounts: id, email, role, active or disabled, created."""
    with session() as (db, settings, _vault):
        found = queries.all_users(db)
        _audit(db, Action.USERS_READ, f"{len(found)} accounts")
    table(
        ["ID", "EMAIL", "ROLE", "STATUS", "CREATED"],
        [
            [
                str(u.id),
                u.email,
                u.role,
                f"disabled {local_time(u.disabled_at, settings)}" if u.disabled_at else "active",
                local_time(u.created_at, settings),
            ]
            for u in found
        ],
        "No staff accounts yet: `peerline user add EMAIL --role admin` makes the first.",
    )


@user_cli.command("disable")
def user_disable(email: str) -> None:
    """Disable an account: it can no longer sign in, and its sessions and tokens end at once."""
    from app.services import staff

    with session() as (db, _settings, _vault):
        user = staff.find_user(db, email)
        staff.update_user(db, user, by=None, role=None, disabled=True, now=datetime.now(UTC))
        _audit(db, Action.USER_UPDATE, f"staff_user:{user.id}")
    typer.echo(f"disabled account {user.id} ({user.email}); its sessions and tokens have ended")


@user_cli.command("reset-password")
def user_reset_password(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the new password from stdin")
    ] = False,
) -> None:
    """Set a new password for an account (the same rules as `user add`); its sessions and
    tokens end at once."""
    from app.services import staff

    with session() as (db, _settings, _vault):
        address = staff.find_user(db, email).email
    password = _new_password(password_stdin, address)
    password_hash = staff.hash_password(password)
    with session() as (db, _settings, _vault):
        user = staff.find_user(db, address)
        staff.set_password(db, user, password_hash, now=datetime.now(UTC))
        _audit(db, Action.USER_PASSWORD_RESET, f"staff_user:{user.id}")
    typer.echo(f"set a new password for account {user.id} ({user.email}); its sessions and tokens have ended")


# ---------------------------------------------------------------- reminders


def _local_free_url(url: str) -> str | None:
    """`url` when it is a loopback http address nothing listens on yet: the built-in fake
    can be served there for the length of one command."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    with socket.socket() as probe:
        # probe the way uvicorn binds (SO_REUSEADDR): a closed connection the service still
        # holds to the last fake (FIN-WAIT-2 here) must not read as "in use", or the sweep
        # after a `peerline phone` call would find no fake and report Twilio unreachable
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((parts.hostname, parts.port or 80))
        except OSError:
            return None
    return url


@reminders_cli.command("run")
def reminders_run(
    at: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="sweep as if it were this moment: 2026-12-01T10:00 (no offset: PROGRAMME_TIMEZONE), "
            "or +8d / +8dT14:00-05:00 (days from now)",
        ),
    ] = None,
) -> None:
    """One reminder sweep, then exit (0 also when another sweep holds the work; 1 when every
    call that was due failed to go out)."""
    from app.context import Context, system_clock
    from app.scheduler import run_sweep
    from app.services.policy import Policy
    from app.settings import PLACEHOLDER_ACCOUNT_SID

    settings = settings_or_fail()
    moment = _parse_at(at, settings.programme_timezone) if at is not None else None
    clock = (lambda: moment.astimezone(UTC)) if moment is not None else system_clock
    engine = make_engine(settings.database_url)
    # development without Twilio: the built-in fake takes the calls on TWILIO_API_URL (unless
    # `peerline fake-twilio` already listens there) and each rings this terminal afterwards
    fake = None
    serving = None
    if settings.twilio_account_sid == PLACEHOLDER_ACCOUNT_SID:
        url = _local_free_url(settings.twilio_api_url)
        if url is not None:
            from app.simulator.fake_twilio import FakeTwilio
            from app.simulator.telephone import _RestServer

            fake = FakeTwilio(auth_token=settings.twilio_auth_token)
            serving = _RestServer(fake, url)
    try:
        ctx = Context(
            settings,
            PhoneVault.from_secret(settings.secret_key, settings.secret_key_previous),
            clock,
            Policy.from_settings(settings),
        )
        with serving if serving is not None else nullcontext():
            report = run_sweep(make_sessionmaker(engine), ctx)
            when = f" at {moment.isoformat()}" if moment is not None else ""
            typer.echo(f"reminder sweep{when}: {report}")
            if fake is not None and fake.calls:
                # the fake stays up meanwhile: "press 1" makes the service place the partner's leg
                _ring_placed(settings, list(fake.calls), when=moment)
    except typer.Exit:
        raise
    except Exception as exc:
        fail(f"reminder sweep failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        engine.dispose()
    if report.unreachable and not report.placed:
        typer.secho(
            f"error: Twilio could not be reached at {settings.twilio_api_url}; no reminder went out",
            fg=typer.colors.RED,
            err=True,
        )
    if report.every_placement_failed:
        raise typer.Exit(code=1)


def _ring_placed(settings: Settings, placed: list[Any], *, when: datetime | None) -> None:
    """Each reminder the built-in fake took rings here; you answer as the participant."""
    import httpx

    from app.simulator.telephone import CallRecord, Exchange, Telephone
    from app.simulator.terminal_phone import TerminalParty
    from ivr.phone import masked

    if len(placed) > 1:
        # twenty rings in a row surprise nobody who was told so first
        typer.echo(f"{len(placed)} reminder calls: each rings here in turn; n then Enter lets one ring out.")
    with httpx.Client(timeout=20) as client:
        for call in placed:
            typer.secho(f"\n☎  Peerline is calling {masked(call.to)} (a reminder)", fg=typer.colors.YELLOW)
            phone_ = Telephone(
                client,
                public_base_url=settings.public_base_url,
                auth_token=settings.twilio_auth_token,
                programme_number=settings.programme_number,
            )
            try:
                exchange = Exchange(phone_, CallRecord(call.sid), TerminalParty("Your partner"))
                if when is not None:
                    exchange.now = when.timestamp()  # the callbacks' Timestamps agree with --at
                exchange.ring_out(call, TerminalParty("You"))
                exchange.run()
            except httpx.HTTPError as exc:
                fail(f"could not reach the service at {settings.public_base_url}: {type(exc).__name__}")
            typer.echo("The reminder call has ended.")


@cli.command("fake-twilio")
def fake_twilio(
    port: Annotated[int, typer.Option(help="port for the fake Calls API")] = 8099,
    url: Annotated[
        str | None,
        typer.Option("--url", metavar="SERVICE", help="where the service runs (default PUBLIC_BASE_URL)"),
    ] = None,
    answer: Annotated[bool, typer.Option(help="ring this terminal for each call placed")] = True,
) -> None:
    """A local fake of Twilio's Calls API; set TWILIO_API_URL=http://127.0.0.1:PORT to use it."""
    import httpx
    import uvicorn

    from app.simulator.fake_twilio import FakeTwilio, PlacedCall, create_fake_twilio
    from app.simulator.telephone import Telephone
    from app.simulator.terminal_phone import TerminalParty
    from ivr.phone import masked

    settings = settings_or_fail()
    if url is not None and not url.startswith(("http://", "https://")):
        fail(f"--url {url!r} must start with http:// or https://")
    # like `peerline phone`: requests are signed for PUBLIC_BASE_URL and sent to --url
    service = (url or settings.public_base_url).rstrip("/")
    fake = FakeTwilio()
    ringing = threading.Lock()

    def warn(message: str) -> None:
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)

    def first_line(exc: BaseException) -> str:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    def ring(call: PlacedCall) -> None:
        # runs on the fake's own thread: a failure is one line here, and the fake keeps serving
        with ringing, httpx.Client(timeout=20) as client:
            typer.secho(f"\n☎  Peerline is calling {masked(call.to)} (a reminder)", fg=typer.colors.YELLOW)
            phone_ = Telephone(
                client,
                public_base_url=settings.public_base_url,
                target_base_url=service,
                auth_token=settings.twilio_auth_token,
                programme_number=settings.programme_number,
            )
            try:
                phone_.answer(
                    call.sid,
                    call.to,
                    call.url,
                    TerminalParty("You"),
                    TerminalParty("Your partner"),
                    status_callback=call.status_callback,
                )
            except httpx.HTTPError as exc:
                warn(
                    f"could not reach the service at {service} ({first_line(exc)}); "
                    "is it running? --url SERVICE says where it is"
                )
                return
            except Exception as exc:  # e.g. the service answered something that is not TwiML
                warn(f"the reminder call stopped: {first_line(exc)}")
                return
            typer.echo("The reminder call has ended.")

    fake.on_call = ring if answer else None
    # said before announcing anything: uvicorn's own refusal comes after "listening on"
    if _local_free_url(f"http://127.0.0.1:{port}") is None:
        fail(f"port {port} is in use (a fake Twilio already running there?); --port P picks another")
    typer.echo(f"Fake Twilio listening on http://127.0.0.1:{port} (set TWILIO_API_URL to it)")
    typer.echo(f"Calls it places ring through the service at {service}")
    uvicorn.run(create_fake_twilio(fake), host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------- a synthetic programme


@cli.command("simulate-cohort")
def simulate_cohort(
    pairs: Annotated[int, typer.Option(help="how many pairs to enrol")] = 40,
    weeks: Annotated[int, typer.Option(help="how many weeks of calls to play")] = 12,
    seed: Annotated[int, typer.Option(help="the same seed makes the same programme")] = 1,
    truth: Annotated[
        Path | None, typer.Option(metavar="FILE", help="write what was meant to happen, one JSON line a call")
    ] = None,
) -> None:
    """A synthetic programme in DATABASE_URL, every call played through the real webhooks."""
    import time

    from app.models import Participant as ParticipantRow
    from app.simulator import cohort

    settings = settings_or_fail()
    if not 1 <= pairs <= cohort.MAX_PAIRS:
        fail(f"--pairs must be between 1 and {cohort.MAX_PAIRS}")
    if weeks < 1:
        fail("--weeks must be at least 1")
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as db:
            # fictional numbers would collide with the ones already enrolled, and a demo
            # mixed into real participants is never wanted
            if db.query(ParticipantRow.id).first() is not None:
                fail("the database already has participants; simulate into an empty one")
    except typer.Exit:
        raise
    except Exception as exc:
        fail(f"cannot read the database ({type(exc).__name__}); run `peerline db upgrade` first")
    finally:
        engine.dispose()
    try:
        if truth is not None:
            truth.open("w").close()  # a truth file that cannot be written fails now, not after the run
    except OSError as exc:
        fail(f"{truth}: {exc.strerror or exc}")
    started = time.monotonic()
    try:
        report = cohort.simulate(settings, pairs=pairs, weeks=weeks, seed=seed, truth=truth)
    except Exception as exc:
        fail(f"simulation failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    took = time.monotonic() - started
    typer.echo(f"simulated {report} in {took:.1f} s ({report.requests / took:.0f} requests/s)")
    typer.echo(f"reminder sweeps: {report.sweep_seconds:.1f} s of it")
    if truth is not None:
        typer.echo(f"ground truth: {truth} ({len(report.truth)} calls)")
        typer.echo(f"pairs: {cohort.pairs_file(truth)} ({len(report.pair_truth)} pairs)")


# ---------------------------------------------------------------- serve and phone


def uvicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """How `peerline serve` runs uvicorn.

    Its access log is off (app.main.Observe writes one without query strings) and so is its
    logging set-up (app.logs has done it). X-Forwarded-For/-Proto are believed only from the
    proxies FORWARDED_ALLOW_IPS names: uvicorn would otherwise trust 127.0.0.1, and anyone
    on the machine could then claim any address in the audit trail and the sign-in limits.
    """
    proxies = settings.forwarded_allow_ips
    return {
        "host": host,
        "port": port,
        "proxy_headers": proxies is not None,
        "forwarded_allow_ips": proxies or "",
        "access_log": False,
        "log_config": None,
        "log_level": settings.log_level.lower(),
        "server_header": False,
    }


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Run the web service (webhooks, API, console); metrics on METRICS_PORT when it is set."""
    import uvicorn

    from app import logs
    from app.main import create_app
    from app.metrics import serve_port

    settings = settings_or_fail()
    try:
        logs.configure(json_lines=settings.json_logs, level=settings.log_level)
    except ValueError:
        fail(f"LOG_LEVEL: {settings.log_level!r} is not a level (DEBUG, INFO, WARNING, ERROR)")
    try:
        application = create_app(settings)
    except Exception as exc:
        fail(f"could not start: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    stop_metrics = None
    if settings.metrics_port is not None:
        try:
            stop_metrics = serve_port(application.state.metrics, host, settings.metrics_port)
        except OSError as exc:
            fail(f"METRICS_PORT {settings.metrics_port}: {exc.strerror or exc}")
        typer.echo(f"Metrics on http://{host}:{settings.metrics_port}/metrics")
    typer.echo(f"Peerline listening on http://{host}:{port}")
    from app.settings import PLACEHOLDER_ACCOUNT_SID

    if settings.twilio_account_sid == PLACEHOLDER_ACCOUNT_SID:
        typer.echo(
            f"No Twilio account: calls go to the built-in fake at {settings.twilio_api_url} "
            "(`peerline phone` and `peerline reminders run` serve it; `peerline fake-twilio` keeps it up)"
        )
    try:
        uvicorn.run(application, **uvicorn_options(settings, host, port))
    finally:
        if stop_metrics is not None:
            stop_metrics()


@cli.command()
def phone(
    from_number: Annotated[str, typer.Option("--from", help="the number you are calling from")],
    url: Annotated[str | None, typer.Option(help="where the service runs (default PUBLIC_BASE_URL)")] = None,
) -> None:
    """A telephone in the terminal: call the service as a participant would."""
    import httpx

    from app.simulator.telephone import Telephone
    from app.simulator.terminal_phone import TerminalParty

    settings = settings_or_fail()
    typer.echo("Calling Peerline from your phone. (h then Enter hangs up)")
    with httpx.Client(timeout=20) as client:
        phone_ = Telephone(
            client,
            public_base_url=settings.public_base_url,
            target_base_url=url,
            auth_token=settings.twilio_auth_token,
            programme_number=settings.programme_number,
            # the service places the partner's leg at TWILIO_API_URL: the fake answers there
            rest_url=_local_free_url(settings.twilio_api_url) or "",
        )
        try:
            phone_.call(from_number, TerminalParty("You"), TerminalParty("Your partner"))
        except httpx.HTTPError as exc:
            fail(f"could not reach the service at {url or settings.public_base_url}: {exc}")
        except AssertionError as exc:
            if " answered 403:" in str(exc):
                # signed for another address or with another token than the server checks:
                # a second terminal in another folder, or without the PUBLIC_BASE_URL run.sh printed
                fail(
                    f"the service refused the call's signature (403); this terminal signs for "
                    f"{settings.public_base_url} with the auth token of this folder: run it in the "
                    "server's folder, with the PUBLIC_BASE_URL the server uses (run.sh prints it)"
                )
            fail(str(exc))
    typer.echo("The call has ended.")


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # marked as app.logs marks its own, so `peerline serve`'s handler replaces this one
    # instead of joining it: otherwise every line of the server's log is printed twice
    for handler in logging.getLogger().handlers:
        handler._peerline = True  # type: ignore[attr-defined]
    # each request the terminal phone sends is not news to the person holding it
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # nor are the Twilio SDK's ten lines of headers for every call a sweep places
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
