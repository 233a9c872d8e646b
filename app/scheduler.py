"""The reminder sweep: once from the command line, or every few minutes inside `peerline serve`.

Several processes may run it at the same moment; the sweep itself keeps every reminder
to one call (see app/services/sweep.py), so the scheduler needs no lock of its own.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.context import Context
from app.services import sweep
from app.twilio.rest import make_twilio_client
from ivr.flow import Urls

log = logging.getLogger(__name__)


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
    scheduler.start()
    log.info("reminder sweep every %d minutes", ctx.settings.reminder_sweep_minutes)
    return scheduler
