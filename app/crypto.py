"""Phone numbers at rest: encrypted with a key derived from SECRET_KEY, found by a keyed blind index.

Keys are derived with HKDF so the encryption key, the blind-index key and the
sign-in token key are independent, and SECRET_KEY itself stays outside the database.

While `peerline keys rotate` moves the numbers to a new secret, some rows are under the
old key and some under the new one: a vault built with a `previous` secret writes with
its own key only, but reads (decrypts, looks up) with both, so callers stay recognised.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret_key: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"peerline", info=purpose.encode()).derive(
        secret_key.encode()
    )


@dataclass(frozen=True)
class PhoneVault:
    fernet: Fernet
    index_key: bytes
    previous: PhoneVault | None = None

    @classmethod
    def from_secret(cls, secret_key: str, previous: str | None = None) -> PhoneVault:
        enc = base64.urlsafe_b64encode(derive_key(secret_key, "phone-encryption-v1"))
        older = cls.from_secret(previous) if previous and previous != secret_key else None
        return cls(Fernet(enc), derive_key(secret_key, "phone-blind-index-v1"), older)

    def encrypt(self, e164: str) -> bytes:
        return self.fernet.encrypt(e164.encode())

    def decrypt(self, token: bytes) -> str | None:
        """The number, under this vault's key or else the previous one; None under neither."""
        try:
            return self.fernet.decrypt(token).decode()
        except InvalidToken:
            return self.previous.decrypt(token) if self.previous is not None else None

    def decrypt_own(self, token: bytes) -> str | None:
        """The number only if it is under this vault's own key (the rotation asks this)."""
        try:
            return self.fernet.decrypt(token).decode()
        except InvalidToken:
            return None

    def blind_index(self, value: str) -> str:
        """The index new rows are written with: this vault's own key."""
        mac = hmac.HMAC(self.index_key, hashes.SHA256())
        mac.update(value.encode())
        return mac.finalize().hex()

    def blind_indexes(self, value: str) -> list[str]:
        """Every index a stored row may carry for this value: own key first, then the previous."""
        found = [self.blind_index(value)]
        if self.previous is not None:
            found.extend(self.previous.blind_indexes(value))
        return found
