"""Console sessions kept on the server, so that signing out really ends them.

The cookie carries a random session id (encrypted, see app/console/session.py); the table
keeps only its SHA-256. A session counts while all of these hold:

- it was not ended: signing out ends it; a password change, a reset, disabling the account and
  "sign out everywhere" end all of the account's sessions (staff.end_all_sessions);
- it was used within the last IDLE_TIMEOUT (15 minutes);
- it is younger than ABSOLUTE_LIFETIME (12 hours), however busy: a full working day, then
  the password again;
- it was issued under the account's current session epoch, and the account is not disabled
  (checked by staff.active_user, as for bearer tokens).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import StaffSession

IDLE_TIMEOUT = timedelta(minutes=15)
ABSOLUTE_LIFETIME = timedelta(hours=12)
# last_seen_at is written at most once a minute: a page view is not worth a write each time,
# and the idle timeout is 15 minutes to within that minute
TOUCH_EVERY = timedelta(minutes=1)


def token_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start(db: Session, *, user_id: int, epoch: int, now: datetime) -> str:
    """A new session for this account; returns the id the cookie is to carry."""
    sid = secrets.token_urlsafe(32)
    # this account's sessions that can never count again go, so the table stays small
    db.execute(
        delete(StaffSession).where(
            StaffSession.user_id == user_id, StaffSession.created_at <= now - ABSOLUTE_LIFETIME
        )
    )
    db.add(
        StaffSession(
            token_hash=token_hash(sid), user_id=user_id, epoch=epoch, created_at=now, last_seen_at=now
        )
    )
    db.flush()
    return sid


def current(db: Session, *, user_id: int, sid: str, now: datetime) -> StaffSession | None:
    """The session this cookie names while it still counts (see above), or None."""
    row = db.scalar(select(StaffSession).where(StaffSession.token_hash == token_hash(sid)))
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return None
    if now - row.last_seen_at > IDLE_TIMEOUT or now - row.created_at > ABSOLUTE_LIFETIME:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(row: StaffSession, *, now: datetime) -> None:
    """Signing out: this session stops counting at once, whoever holds a copy of the cookie."""
    if row.ended_at is None:
        row.ended_at = now
