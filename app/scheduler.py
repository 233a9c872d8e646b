"""The reminder sweep and the staff digests: once from the command line, or every few
minutes inside `peerline serve`.

Several processes may run either at the same moment; the sweep itself keeps every reminder
to one call (see app/services/sweep.py) and a digest is claimed in the database before it is
sent (see app/services/digest.py), so the scheduler needs no lock of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.context import Context
from app.models import StaffUser
from app.services import digest, sweep
from app.twilio.rest import make_twilio_client
from ivr.flow import Urls

log = logging.getLogger(__name__)

# digests go out at their hour; a run every few minutes also retries a failed one within it
DIGEST_MINUTES = 5


def run_sweep(make_session: sessionmaker[Session], ctx: Context) -> sweep.SweepReport:
    settings = ctx.settings
    started = time.monotonic()
    report = sweep.sweep(
        make_session,
        ctx.vault,
        make_twilio_client(settings),
        now=ctx.clock(),
        policy=ctx.policy,
        urls=Urls(settings.public_base_url),
        programme_number=settings.programme_number,
    )
    metrics.sweep_finished(report, time.monotonic() - started)
    log.info("reminder sweep: %s", report)
    return report


def _sweep_safely(make_session: sessionmaker[Session], ctx: Context) -> None:
    try:
        run_sweep(make_session, ctx)
    except Exception:
        metrics.sweep_failed()
        log.exception("reminder sweep failed; the next one will try again")


@dataclass
class DigestReport:
    sent: list[str] = field(default_factory=list)
    # (address, why): released, so the next run tries again
    failed: list[tuple[str, str]] = field(default_factory=list)
    # another process claimed it first, or the account changed meanwhile
    skipped: int = 0

    def __str__(self) -> str:
        return f"sent {len(self.sent)}, failed {len(self.failed)}, skipped {self.skipped}"


def preview_digests(make_session: sessionmaker[Session], ctx: Context) -> list[digest.Digest]:
    """The digests due now, as they would go out; nothing is claimed or sent."""
    settings = ctx.settings
    now = ctx.clock()
    with make_session() as db:
        return [
            digest.prepare(
                db,
                user,
                now=now,
                zone=settings.programme_timezone,
                sender=settings.digest_from,
                console_url=f"{settings.public_base_url}/console/",
            )
            for user in digest.due(db, now, settings.programme_timezone)
        ]


def send_digests(
    make_session: sessionmaker[Session], ctx: Context, send: Callable[[EmailMessage], None]
) -> DigestReport:
    """Send each digest due now: claim it and commit, send, and give the claim back if
    sending failed. Each account has transactions of its own, so one failure stops nobody
    else's digest."""
    settings = ctx.settings
    zone = settings.programme_timezone
    now = ctx.clock()
    report = DigestReport()
    with make_session() as db:
        ids = [user.id for user in digest.due(db, now, zone)]
    for user_id in ids:
        with make_session() as db:
            user = db.get(StaffUser, user_id)
            if user is None or user.disabled_at is not None or user.digest_hour is None:
                report.skipped += 1
                continue
            prepared = digest.prepare(
                db,
                user,
                now=now,
                zone=zone,
                sender=settings.digest_from,
                console_url=f"{settings.public_base_url}/console/",
            )
            if not digest.claim(db, user_id, prepared.day, now):
                report.skipped += 1
                continue
            # committed before the mail goes: a second process now finds the day taken
            db.commit()
        try:
            send(prepared.message)
        except Exception as exc:
            why = str(exc) or type(exc).__name__
            with make_session() as db:
                digest.release(db, user_id, prepared.day)
                db.commit()
            # the account's id, not its address: logs stay minimal
            log.warning("digest for staff user %d not sent (%s); the next run tries again", user_id, why)
            report.failed.append((prepared.to, why))
            continue
        log.info("digest sent to staff user %d", user_id)
        report.sent.append(prepared.to)
    return report


def _digests_safely(make_session: sessionmaker[Session], ctx: Context) -> None:
    smtp_url = ctx.settings.smtp_url
    if smtp_url is None:
        return
    try:
        report = send_digests(make_session, ctx, digest.Mailer.from_url(smtp_url).send)
    except Exception:
        log.exception("staff digests failed; the next run will try again")
        return
    if report.sent or report.failed:
        log.info("staff digests: %s", report)


def start_scheduler(make_session: sessionmaker[Session], ctx: Context) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        _sweep_safely,
        "interval",
        minutes=ctx.settings.reminder_sweep_minutes,
        args=[make_session, ctx],
        id="reminder-sweep",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC) + timedelta(seconds=2),
    )
    if ctx.settings.smtp_url is not None:
        scheduler.add_job(
            _digests_safely,
            "interval",
            minutes=DIGEST_MINUTES,
            args=[make_session, ctx],
            id="staff-digests",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=5),
        )
    scheduler.start()
    log.info("reminder sweep every %d minutes", ctx.settings.reminder_sweep_minutes)
    if ctx.settings.smtp_url is not None:
        log.info("staff digests checked every %d minutes", DIGEST_MINUTES)
    return scheduler
