"""Staff accounts and sign-in: argon2id hashes, lockout after repeated wrong passwords."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crypto import derive_key
from app.models import SignInFailure, StaffUser
from app.services.errors import Conflict, Invalid, NotFound, ServiceError

MIN_PASSWORD_LENGTH = 12
ACCOUNT_FAILURES = 10
CLIENT_FAILURES = 50
LOCKOUT_WINDOW = timedelta(minutes=15)
TOKEN_LIFETIME = timedelta(minutes=30)

_hasher = PasswordHasher()
# verifying against this when the account does not exist costs the same time as a real check
_DUMMY_HASH = _hasher.hash("peerline-no-such-account")


class Role(IntEnum):
    nurse = 1
    staff = 2
    admin = 3


class Locked(ServiceError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadCredentials(ServiceError):
    status_code = 401


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise Invalid("email: not an email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password: at least {MIN_PASSWORD_LENGTH} characters")


def parse_role(role: str) -> Role:
    try:
        return Role[role]
    except KeyError:
        raise Invalid("role: must be nurse, staff or admin") from None


def create_user(db: Session, *, email: str, password: str, role: str, now: datetime) -> StaffUser:
    email = normalise_email(email)
    check_password(password)
    parse_role(role)
    if db.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise Conflict(f"email: an account for {email} exists already")
    user = StaffUser(email=email, password_hash=_hasher.hash(password), role=role, created_at=now)
    db.add(user)
    db.flush()
    return user


def get_user(db: Session, user_id: int) -> StaffUser:
    user = db.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"staff user {user_id} does not exist")
    return user


def _failures_since(db: Session, column: Any, value: str, since: datetime) -> list[datetime]:
    return list(
        db.scalars(
            select(SignInFailure.at)
            .where(column == value, SignInFailure.at > since)
            .order_by(SignInFailure.at)
        )
    )


def _check_lock(db: Session, email: str, client_ip: str, now: datetime) -> None:
    since = now - LOCKOUT_WINDOW
    for column, value, limit, who in (
        (SignInFailure.email, email, ACCOUNT_FAILURES, "this account"),
        (SignInFailure.client_ip, client_ip, CLIENT_FAILURES, "this address"),
    ):
        failures = _failures_since(db, column, value, since)
        if len(failures) >= limit:
            unlock = failures[-limit] + LOCKOUT_WINDOW
            retry = max(1, math.ceil((unlock - now).total_seconds()))
            raise Locked(
                f"too many wrong passwords for {who}; try again in {math.ceil(retry / 60)} minutes", retry
            )


def authenticate(db: Session, *, email: str, password: str, client_ip: str, now: datetime) -> StaffUser:
    """The account for these credentials, or BadCredentials / Locked. Failures are recorded."""
    email = email.strip().lower()
    _check_lock(db, email, client_ip, now)
    user = db.scalar(select(StaffUser).where(StaffUser.email == email))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.disabled_at is None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        db.add(SignInFailure(email=email, client_ip=client_ip, at=now))
        raise BadCredentials("wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenMaker:
    """Signed, encrypted, expiring tokens (Fernet) with a key derived from SECRET_KEY."""

    fernet: Fernet

    @classmethod
    def from_secret(cls, secret_key: str) -> TokenMaker:
        return cls(Fernet(base64.urlsafe_b64encode(derive_key(secret_key, "sign-in-token-v1"))))

    def issue(self, user: StaffUser, now: datetime, purpose: str = "api") -> str:
        payload = json.dumps({"uid": user.id, "p": purpose}).encode()
        return self.fernet.encrypt_at_time(payload, int(now.timestamp())).decode()

    def read(
        self, token: str, now: datetime, lifetime: timedelta = TOKEN_LIFETIME, purpose: str = "api"
    ) -> int | None:
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
        ):
            return None
        return int(payload["uid"])
