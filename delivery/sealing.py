"""Encryption at rest of stored secrets (credentials, download-link tokens, webhook signing secrets), and key rotation.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) does the sealing: authenticated, versioned, and
with a key ring (`MultiFernet`) that makes rotation a re-encryption rather than a flag day. Each configured
key is stretched with HKDF into a Fernet key, so any high-entropy string can serve as GEOSHIP_SECRET_KEY.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Session, select

from models.errors import SecretsUnavailable
from models.keys import get_secret_keys
from models.tables import Credential, DownloadLink, Webhook


def _fernet(material: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"geoship sealing v1").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def _ring() -> MultiFernet:
    return MultiFernet([_fernet(k) for k in get_secret_keys()])


def seal(plaintext: str) -> str:
    """`plaintext` encrypted with the newest key."""
    return _ring().encrypt(plaintext.encode()).decode()


def unseal(sealed: str) -> str:
    """The plaintext of `sealed`; `SecretsUnavailable` when no configured key opens it."""
    try:
        return _ring().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SecretsUnavailable(
            "a stored secret cannot be decrypted with the configured key(s): was GEOSHIP_SECRET_KEY or the "
            "key file changed without `geoship keys rotate`?"
        ) from None


def reseal_all(session: Session) -> int:
    """Re-encrypt every stored secret with the newest key (in the caller's transaction); returns the count."""
    ring = _ring()
    count = 0
    for row, field in [*((c, "sealed") for c in session.exec(select(Credential))),
                       *((link, "token_sealed") for link in session.exec(select(DownloadLink))),
                       *((webhook, "secret_sealed") for webhook in session.exec(select(Webhook)))]:
        try:
            setattr(row, field, ring.rotate(getattr(row, field).encode()).decode())
        except InvalidToken:
            raise SecretsUnavailable(
                f"{type(row).__name__.lower()} {row.id} cannot be decrypted with any configured key; nothing was "
                "re-encrypted"
            ) from None
        session.add(row)
        count += 1
    session.flush()
    return count
