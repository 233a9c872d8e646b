"""Console sign-in: an encrypted, expiring cookie that slides with use; CSRF tokens bound to it.

The cookie only names a session; whether it still counts is the server's to say
(app/services/sessions.py): signing out ends it there, whoever holds a copy of the cookie.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import constant_time, hashes, hmac

from app.crypto import derive_key
from app.services.sessions import IDLE_TIMEOUT

COOKIE = "peerline_session"
LOGIN_COOKIE = "peerline_login"


@dataclass(frozen=True)
class ConsoleSession:
    user_id: int
    sid: str


@dataclass(frozen=True)
class SessionKeys:
    fernet: Fernet
    csrf_key: bytes

    @classmethod
    def from_secret(cls, secret_key: str) -> SessionKeys:
        return cls(
            Fernet(base64.urlsafe_b64encode(derive_key(secret_key, "console-session-v1"))),
            derive_key(secret_key, "console-csrf-v1"),
        )

    def issue(self, user_id: int, now: datetime, sid: str) -> tuple[str, ConsoleSession]:
        session = ConsoleSession(user_id, sid)
        payload = json.dumps({"uid": session.user_id, "sid": session.sid}).encode()
        return self.fernet.encrypt_at_time(payload, int(now.timestamp())).decode(), session

    def read(self, cookie: str | None, now: datetime) -> ConsoleSession | None:
        """The session, or None when missing, forged or idle for longer than the timeout."""
        if not cookie:
            return None
        try:
            raw = self.fernet.decrypt_at_time(
                cookie.encode(), int(IDLE_TIMEOUT.total_seconds()), int(now.timestamp())
            )
            data = json.loads(raw)
            return ConsoleSession(int(data["uid"]), str(data["sid"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None

    def csrf_token(self, binding: str) -> str:
        mac = hmac.HMAC(self.csrf_key, hashes.SHA256())
        mac.update(binding.encode())
        return mac.finalize().hex()

    def csrf_ok(self, binding: str, token: str | None) -> bool:
        if not token:
            return False
        return constant_time.bytes_eq(self.csrf_token(binding).encode(), token.encode())
