"""The phone line never waits: a webhook answers within its deadline, whatever the database does.

Each webhook's work runs on a small pool of threads of its own, so stuck console or API
requests cannot starve the phone line (and stuck webhooks cannot starve them). When the
deadline passes first, the caller gets the fallback answer (the spoken apology) and the
work is abandoned: it rolls back instead of committing, so a request that missed its
deadline leaves no partial rows. A commit that had already begun is given a short grace
to finish, so what the caller hears and what is stored never disagree.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

# Twilio waits 15 s, the design promises 3 s; leave room for the network and the proxy.
DEFAULT_DEADLINE_SECONDS = 2.0
COMMIT_GRACE_SECONDS = 0.4


class Abandoned(Exception):
    """The answer has already gone back without this work: do not commit it."""


class Guard:
    """Shared between the waiting request and its worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._committing = False

    def begin_commit(self) -> None:
        """Call right before committing; raises Abandoned when the answer has already gone."""
        with self._lock:
            if self._abandoned:
                raise Abandoned
            self._committing = True

    def abandon(self) -> bool:
        """True when the worker had not started to commit, and now never will."""
        with self._lock:
            if self._committing:
                return False
            self._abandoned = True
            return True


class DeadlineRunner:
    def __init__(self, *, workers: int = 16, deadline_seconds: float = DEFAULT_DEADLINE_SECONDS) -> None:
        self.deadline_seconds = deadline_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self.missed = 0  # answers given by the fallback because the deadline passed

    async def run(
        self, work: Callable[[Guard], T], fallback: Callable[[], T], *, arrived: float | None = None
    ) -> T:
        started = arrived if arrived is not None else time.monotonic()
        guard = Guard()
        loop = asyncio.get_running_loop()
        # the request's context goes along: its log lines keep the call's request id
        future = loop.run_in_executor(self._pool, contextvars.copy_context().run, work, guard)
        future.add_done_callback(_retrieve)
        remaining = max(0.05, self.deadline_seconds - (time.monotonic() - started))
        try:
            return await asyncio.wait_for(asyncio.shield(future), remaining)
        except TimeoutError:
            pass
        if not guard.abandon():
            try:
                return await asyncio.wait_for(asyncio.shield(future), COMMIT_GRACE_SECONDS)
            except TimeoutError:
                log.error("a webhook's commit outlasted its grace; the caller hears the apology")
        future.cancel()  # still queued: it will never start
        self.missed += 1
        metrics.deadline_missed()
        log.warning(
            "webhook deadline passed after %.2f s; the caller hears the apology", time.monotonic() - started
        )
        return fallback()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # an abandoned worker's outcome (often Abandoned itself) is expected and already handled
    if not future.cancelled() and future.exception() is not None:
        log.debug("abandoned webhook work ended with %s", type(future.exception()).__name__)
