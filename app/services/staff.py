"""Staff accounts: argon2id hashes, roles, the sign-in lockout, session epochs, tokens.

Signing in itself (read, hash outside any transaction, write the outcome) is in
app/services/auth.py; this module has the pieces it is made of.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from app.crypto import derive_key
from app.models import SignInFailure, StaffSession, StaffUser
from app.services.errors import Conflict, Invalid, ServiceError, found
from app.services.passwords import MAX_LENGTH, MIN_LENGTH, password_problem

MIN_PASSWORD_LENGTH = MIN_LENGTH
ACCOUNT_FAILURES = 10
CLIENT_FAILURES = 50
LOCKOUT_WINDOW = timedelta(minutes=15)
TOKEN_LIFETIME = timedelta(minutes=30)

_hasher = PasswordHasher()
# verifying against a dummy hash when the account does not exist costs the same time as a real
# check, so the answer's timing does not tell which emails have accounts; made with the hasher
# in use, whose parameters (and so whose cost) it must share
_dummy: tuple[PasswordHasher, str] | None = None
# argon2id takes ~60 ms of CPU and 64 MiB of memory a hash. Fifty sign-ins at once would take
# every core and 3 GiB and starve the phone line; so hashes wait their turn here, one per core
# (at most four), outside any transaction and without holding a database connection.
_HASHING = threading.BoundedSemaphore(min(4, max(1, os.cpu_count() or 1)))


class Role(IntEnum):
    nurse = 1
    staff = 2
    admin = 3


class Locked(ServiceError):
    status_code = 429

    def __init__(self, message: str, retry_after: int, *, by_address: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.by_address = by_address


class BadCredentials(ServiceError):
    status_code = 401


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise Invalid("email: not an email address")
    if any(ord(c) < 32 or ord(c) == 127 for c in email):
        raise Invalid("email: must not contain control characters")
    return email


def check_password(password: str, *, email: str = "") -> None:
    """The password rules (app/services/passwords.py), as an Invalid naming the field."""
    problem = password_problem(password, email=email)
    if problem is not None:
        raise Invalid(f"password: {problem}")


def parse_role(role: str) -> Role:
    try:
        return Role[role]
    except KeyError:
        raise Invalid("role: must be nurse, staff or admin") from None


# ---------------------------------------------------------------- hashing


def hash_password(password: str) -> str:
    """A new argon2id hash. Slow on purpose: call it outside any write transaction."""
    with _HASHING:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; with no hash (no such account) it costs the same and fails.
    Slow on purpose: call it outside any write transaction."""
    if len(password) > MAX_LENGTH * 4:
        # no password this long was ever accepted; hashing megabytes is only work for an attacker
        return False
    with _HASHING:
        try:
            _hasher.verify(password_hash or _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False
    return password_hash is not None


def _dummy_hash() -> str:
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash("peerline-no-such-account"))
    return _dummy[1]


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# ---------------------------------------------------------------- accounts


def create_user(
    db: Session,
    *,
    email: str,
    password: str,
    role: str,
    now: datetime,
    password_hash: str | None = None,
) -> StaffUser:
    """A new account. `password_hash`, when the caller hashed the password beforehand (outside
    the transaction: on SQLite an open one holds the writer lock), saves hashing it here."""
    email = normalise_email(email)
    check_password(password, email=email)
    parse_role(role)
    if db.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise Conflict(f"email: an account for {email} exists already")
    user = StaffUser(
        email=email,
        password_hash=password_hash or hash_password(password),
        role=role,
        created_at=now,
        session_epoch=0,
    )
    db.add(user)
    db.flush()
    return user


def get_user(db: Session, user_id: int) -> StaffUser:
    return found(db.get(StaffUser, user_id), f"staff user {user_id}")


def find_user(db: Session, email: str) -> StaffUser:
    address = email.strip().lower()
    return found(db.scalar(select(StaffUser).where(StaffUser.email == address)), f"staff account {address!r}")


def active_user(db: Session, user_id: int | None, epoch: int | None) -> StaffUser | None:
    """The account a sign-in token or console session names, while it may still act: None once
    the account is gone or disabled, or when the credential was issued before its password
    changed or before someone signed it out everywhere (an older session epoch)."""
    user = db.get(StaffUser, user_id) if user_id is not None else None
    if user is None or user.disabled_at is not None or user.session_epoch != epoch:
        return None
    return user


def end_all_sessions(db: Session, user: StaffUser, *, now: datetime) -> None:
    """Every bearer token and console session of this account stops working at once."""
    user.session_epoch = (user.session_epoch or 0) + 1
    db.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )


def set_password(db: Session, user: StaffUser, password_hash: str, *, now: datetime) -> None:
    """A new password (already hashed, outside the transaction); every session of the old one ends."""
    user.password_hash = password_hash
    end_all_sessions(db, user, now=now)


def update_user(
    db: Session,
    user: StaffUser,
    *,
    by: StaffUser | None,
    role: str | None,
    disabled: bool | None,
    now: datetime,
) -> StaffUser:
    """Change an account's role or disable it; an admin cannot lock themselves out, or the
    programme could end up with no one able to manage accounts. Disabling ends every session
    at once, and enabling again does not bring them back."""
    if role is not None:
        parse_role(role)
    if by is not None and user.id == by.id and (disabled or (role and role != Role.admin.name)):
        raise Conflict("you cannot demote or disable your own account")
    if role is not None:
        user.role = role
    if disabled is not None:
        if disabled and user.disabled_at is None:
            user.disabled_at = now
            end_all_sessions(db, user, now=now)
        elif not disabled:
            user.disabled_at = None
    return user


# ---------------------------------------------------------------- the sign-in lockout


def serialise_sign_ins(db: Session, email: str, client_ip: str) -> None:
    """Make sign-ins for this account, and from this address, take turns until the transaction ends.

    Counting the failures and recording one more must be one step, or forty guesses at once all
    see nine failures and all get a 401. PostgreSQL: transaction-level advisory locks on the
    account and then the address (always in that order, so two sign-ins cannot deadlock); no row
    is needed, so an email that has no account is serialised as well as one that has. SQLite:
    every transaction already starts with BEGIN IMMEDIATE, the database's one writer lock.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    for key in (f"peerline.sign_in.account:{email}", f"peerline.sign_in.address:{client_ip}"):
        db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def _failures_since(db: Session, column: Any, value: str, since: datetime) -> list[datetime]:
    return list(
        db.scalars(
            select(SignInFailure.at)
            .where(column == value, SignInFailure.at > since)
            .order_by(SignInFailure.at)
        )
    )


def lock_for(db: Session, email: str, client_ip: str, now: datetime) -> Locked | None:
    """The lockout in force for this account or address, or None."""
    since = now - LOCKOUT_WINDOW
    for column, value, limit, who in (
        (SignInFailure.email, email, ACCOUNT_FAILURES, "this account"),
        (SignInFailure.client_ip, client_ip, CLIENT_FAILURES, "this address"),
    ):
        failures = _failures_since(db, column, value, since)
        if len(failures) >= limit:
            unlock = failures[-limit] + LOCKOUT_WINDOW
            retry = max(1, math.ceil((unlock - now).total_seconds()))
            return Locked(
                f"too many wrong passwords for {who}; try again in {math.ceil(retry / 60)} minutes",
                retry,
                by_address=column is SignInFailure.client_ip,
            )
    return None


def record_failure(db: Session, email: str, client_ip: str, now: datetime) -> None:
    """One wrong password; rows older than the lockout window go, so the table stays small."""
    db.add(SignInFailure(email=email, client_ip=client_ip, at=now))
    cutoff = now - LOCKOUT_WINDOW
    for column, value in ((SignInFailure.email, email), (SignInFailure.client_ip, client_ip)):
        db.execute(delete(SignInFailure).where(column == value, SignInFailure.at <= cutoff))


# ---------------------------------------------------------------- tokens


class TokenSubject(Protocol):
    """Whom a token is issued to: an account row, or auth.SignedIn."""

    @property
    def id(self) -> int: ...

    @property
    def session_epoch(self) -> int: ...


@dataclass(frozen=True)
class TokenClaims:
    """Whom a token names, and under which session epoch it was issued."""

    user_id: int
    epoch: int


@dataclass(frozen=True)
class TokenMaker:
    """Signed, encrypted, expiring tokens (Fernet) with a key derived from SECRET_KEY."""

    fernet: Fernet

    @classmethod
    def from_secret(cls, secret_key: str) -> TokenMaker:
        return cls(Fernet(base64.urlsafe_b64encode(derive_key(secret_key, "sign-in-token-v1"))))

    def issue(self, user: TokenSubject, now: datetime, purpose: str = "api") -> str:
        """A token for this account under its current session epoch: a password change or
        "sign out everywhere" raises the epoch, and every token issued before stops working."""
        payload = json.dumps({"uid": user.id, "e": user.session_epoch or 0, "p": purpose}).encode()
        return self.fernet.encrypt_at_time(payload, int(now.timestamp())).decode()

    def read(
        self, token: str, now: datetime, lifetime: timedelta = TOKEN_LIFETIME, purpose: str = "api"
    ) -> TokenClaims | None:
        try:
            payload = json.loads(
                self.fernet.decrypt_at_time(
                    token.encode(), int(lifetime.total_seconds()), int(now.timestamp())
                )
            )
        except (InvalidToken, ValueError, TypeError):
            return None
        if (
            not isinstance(payload, dict)
            or payload.get("p") != purpose
            or not isinstance(payload.get("uid"), int)
            or not isinstance(payload.get("e"), int)
        ):
            return None
        return TokenClaims(int(payload["uid"]), int(payload["e"]))
