"""The server's secret keys: from GEOSHIP_SECRET_KEY, else a key file under GEOSHIP_HOME made on first use.

Keys form a ring, newest first: the first encrypts, every one decrypts. That is what lets
`geoship keys rotate` re-encrypt stored secrets without a moment in which any of them is unreadable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from models.settings import get_settings


def _key_file() -> Path:
    return Path(get_settings().home) / "secret.key"


def _write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically; it is created with mode 0600 so only its owner can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".new")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
    os.replace(staging, path)


def new_key() -> str:
    """Fresh key material (384 random bits, URL-safe text)."""
    return secrets.token_urlsafe(48)


def keys_from_environment() -> bool:
    """True when the keys come from GEOSHIP_SECRET_KEY rather than the key file."""
    return get_settings().secret_key is not None


def get_secret_keys() -> list[bytes]:
    """The key ring, newest first; the key file is created on first use when no key is configured."""
    settings = get_settings()
    if settings.secret_key is not None:
        keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
    else:
        path = _key_file()
        if not path.exists():
            _write_key_file(path, [new_key()])
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise ValueError("the secret key is empty: set GEOSHIP_SECRET_KEY or remove the empty key file")
    return [k.encode() for k in keys]


def push_key_file(key: str) -> None:
    """Put `key` first in the key file's ring; the older keys stay to decrypt what they encrypted."""
    _write_key_file(_key_file(), [key, *(k.decode() for k in get_secret_keys())])


def retire_old_keys() -> int:
    """Keep only the newest key in the key file; returns how many keys were dropped."""
    keys = get_secret_keys()
    _write_key_file(_key_file(), [keys[0].decode()])
    return len(keys) - 1
