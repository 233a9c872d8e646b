"""Phone numbers at rest: encrypted with a key derived from SECRET_KEY, found by a keyed blind index.

Keys are derived with HKDF so the encryption key, the blind-index key and the
sign-in token key are independent, and SECRET_KEY itself stays outside the database.
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

    @classmethod
    def from_secret(cls, secret_key: str) -> PhoneVault:
        enc = base64.urlsafe_b64encode(derive_key(secret_key, "phone-encryption-v1"))
        return cls(Fernet(enc), derive_key(secret_key, "phone-blind-index-v1"))

    def encrypt(self, e164: str) -> bytes:
        return self.fernet.encrypt(e164.encode())

    def decrypt(self, token: bytes) -> str | None:
        try:
            return self.fernet.decrypt(token).decode()
        except InvalidToken:
            return None

    def blind_index(self, value: str) -> str:
        mac = hmac.HMAC(self.index_key, hashes.SHA256())
        mac.update(value.encode())
        return mac.finalize().hex()
