"""`peerline digest send [--dry-run] [--at WHEN]`: the staff digests due now, once.

`peerline serve` sends them by itself every few minutes (app/scheduler.py); this command is
for cron without the server, for trying the mail settings, and for seeing, with --dry-run,
what would go to whom. A Typer sub-app registered by app/cli.py; like app/cli_export.py it
does not import app.cli (which imports it): errors are one line on standard error, exit 2.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from app.cli_common import fail, fail_unexpected, parse_at, settings_or_fail
from app.context import Context, system_clock
from app.crypto import PhoneVault
from app.db import make_engine, make_sessionmaker
from app.scheduler import preview_digests, send_digests
from app.services.digest import Mailer, MailError, summary
from app.services.policy import Policy

digest_cli = typer.Typer(help="Daily email digests for staff (counts only).", no_args_is_help=True)


@digest_cli.command("send")
def digest_send(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would be sent to whom, and send nothing")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="as if it were this moment (no offset: PROGRAMME_TIMEZONE)"),
    ] = None,
) -> None:
    """Send the digests due this hour (exit 1 when one could not be sent; the next run retries it)."""
    settings = settings_or_fail()
    mailer = None
    if not dry_run:
        if settings.smtp_url is None:
            fail("SMTP_URL is not set, so no digest can be sent (--dry-run shows what would be)")
        try:
            mailer = Mailer.from_url(settings.smtp_url)
        except MailError as exc:
            fail(str(exc))
    moment = parse_at(at, settings.programme_timezone).astimezone(UTC) if at is not None else None
    ctx = Context(
        settings,
        PhoneVault.from_secret(settings.secret_key, settings.secret_key_previous),
        (lambda: moment) if moment is not None else system_clock,
        Policy.from_settings(settings),
    )
    local = ctx.clock().astimezone(ZoneInfo(settings.programme_timezone))
    when = f"{local:%Y-%m-%d %H}:00 {settings.programme_timezone}"
    engine = make_engine(settings.database_url)
    try:
        if mailer is None:
            previews = preview_digests(make_sessionmaker(engine), ctx)
        else:
            report = send_digests(make_sessionmaker(engine), ctx, mailer.send)
    except Exception as exc:  # a readable line, never a traceback
        fail_unexpected(exc, "digest")
    finally:
        engine.dispose()

    if mailer is None:
        if not previews:
            typer.echo(f"no digest is due at {when}; nothing would be sent")
        for preview in previews:
            typer.echo(f"would send to {preview.to}: {summary(preview.counts)}")
            typer.echo("")
            typer.echo(preview.message.as_string().rstrip())
            typer.echo("")
        return
    if not (report.sent or report.failed):
        also = f" ({report.skipped} sent by another process meanwhile)" if report.skipped else ""
        typer.echo(f"no digest is due at {when}{also}")
    for address in report.sent:
        typer.echo(f"sent the digest to {address}")
    for address, why in report.failed:
        typer.secho(f"error: the digest to {address} was not sent: {why}", fg=typer.colors.RED, err=True)
    if report.failed:
        raise typer.Exit(code=1)
