"""Signing in, with its audit, for the API and the console alike.

A sign-in is three steps, and only the short ones touch the database:

1. **read** (one short transaction): the lockout in force and the account's hash, then the
   transaction ends. On SQLite every transaction takes the database's one writer lock
   (BEGIN IMMEDIATE), so a sign-in that held it through argon2 made live calls wait: 55
   wrong passwords at once delayed a webhook by 8.7 s;
2. **hash** (no transaction, no connection): argon2id, a few at a time (staff._HASHING);
3. **write** (one short transaction): sign-ins for this account and from this address take
   turns (staff.serialise_sign_ins), the lockout is checked again, and the outcome, a failure
   row or the successful sign-in, is written with its audit. Checking and counting in one
   serialised step is what makes "10 failures, then 429" exact under any concurrency.

This is the documented exception to "services never commit": the steps are separate
transactions, so the service opens and commits its own sessions (from the sessionmaker it is
given) instead of working inside the request's one. A refused sign-in is committed before the
refusal is raised, which the lockout needs anyway: a failure that was not stored costs an
attacker nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.models import StaffUser
from app.services import audit, staff
from app.services.audit import Action, FailureReason
from app.services.errors import Invalid
from app.services.staff import BadCredentials, Locked, Role

__all__ = ["BadCredentials", "Locked", "SignedIn", "change_password", "sign_in"]


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, as plain values (the rows' session is closed by the time anyone reads this)."""

    id: int
    email: str
    role: Role
    session_epoch: int


@dataclass(frozen=True)
class _Account:
    user_id: int
    password_hash: str


def sign_in(
    sessions: sessionmaker[Session],
    *,
    email: str,
    password: str,
    client_ip: str,
    now: datetime,
    channel: str,
    new_password: str | None = None,
) -> SignedIn:
    """The account for these credentials; every attempt is audited, failures coalesced per minute.

    Raises BadCredentials or Locked, both already committed with their audit. With
    `new_password` (checked by the caller beforehand), a correct password is replaced by it and
    every session and token of the account ends (a password change).
    """
    email = email.strip().lower()[:254]
    if any(ord(c) < 32 for c in email):
        # PostgreSQL cannot even compare text holding NUL: refused before any query
        raise Invalid("email: must not contain control characters")
    with sessions() as db:
        if staff.lock_for(db, email, client_ip, now) is not None:
            # locked already: no password is checked, the refusal is written at once (this
            # raises, unless the lock lapsed in the meantime)
            _refuse_locked(db, email, client_ip, now, channel)
        account = _account(db, email)
        db.rollback()  # nothing was written: this only ends the transaction (and SQLite's lock)
    ok = staff.verify_password(account.password_hash if account else None, password)
    new_hash: str | None = None
    if ok and account is not None and (new_password is not None or staff.needs_rehash(account.password_hash)):
        new_hash = staff.hash_password(new_password if new_password is not None else password)
    with sessions() as db:
        # the lockout again, now with this account's and address's turn: what was read before
        # the hash may be out of date, and counting must be one step with checking
        _refuse_locked(db, email, client_ip, now, channel)
        user = db.get(StaffUser, account.user_id) if account is not None else None
        # the hash checked must still be the account's: a reset meanwhile makes the old password wrong
        if (
            not ok
            or user is None
            or account is None
            or user.disabled_at is not None
            or user.password_hash != account.password_hash
        ):
            staff.record_failure(db, email, client_ip, now)
            audit.failed_sign_in(
                db, email=email, reason=FailureReason.WRONG_PASSWORD, client_ip=client_ip, at=now
            )
            db.commit()
            metrics.sign_in_failed(locked=False, channel=channel)
            raise BadCredentials("wrong email or password")
        if new_password is not None and new_hash is not None:
            staff.set_password(db, user, new_hash, now=now)
            action, target = Action.PASSWORD_CHANGE, f"staff_user:{user.id}"
        else:
            if new_hash is not None:
                user.password_hash = new_hash  # stronger parameters since it was set
            action = Action.SIGN_IN
            target = "console" if channel == "console" else f"staff_user:{user.id}"
        audit.record(db, actor=user.email, action=action, target=target, client_ip=client_ip, at=now)
        signed_in = SignedIn(user.id, user.email, Role[user.role], user.session_epoch)
        db.commit()
    return signed_in


def change_password(
    sessions: sessionmaker[Session],
    *,
    email: str,
    current_password: str,
    new_password: str,
    client_ip: str,
    now: datetime,
    channel: str,
) -> SignedIn:
    """A signed-in person's new password, once the current one is right. A wrong current
    password counts towards the lockout like any wrong password. Every other session and token
    of the account ends; the caller starts a fresh one for whoever made the change."""
    staff.check_password(new_password, email=email)
    return sign_in(
        sessions,
        email=email,
        password=current_password,
        client_ip=client_ip,
        now=now,
        channel=channel,
        new_password=new_password,
    )


def _refuse_locked(db: Session, email: str, client_ip: str, now: datetime, channel: str) -> None:
    """Raise the lockout in force, committed with its audit, after taking this account's and
    this address's turn; return when there is none (the turn is kept until the commit)."""
    staff.serialise_sign_ins(db, email, client_ip)
    lock = staff.lock_for(db, email, client_ip, now)
    if lock is None:
        return
    reason = FailureReason.ADDRESS_LOCKED if lock.by_address else FailureReason.ACCOUNT_LOCKED
    audit.failed_sign_in(db, email=email, reason=reason, client_ip=client_ip, at=now)
    db.commit()
    metrics.sign_in_failed(locked=True, channel=channel)
    raise lock


def _account(db: Session, email: str) -> _Account | None:
    row = db.execute(select(StaffUser.id, StaffUser.password_hash).where(StaffUser.email == email)).first()
    return _Account(row.id, row.password_hash) if row is not None else None
