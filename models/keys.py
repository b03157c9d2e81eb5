"""The server's secret key: from GEOSHIP_SECRET_KEY, else a file under GEOSHIP_HOME made on first use."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from models.settings import get_settings


def get_secret_key() -> bytes:
    """The secret key bytes; the key file is created with mode 0600 so only its owner can read it."""
    settings = get_settings()
    if settings.secret_key:
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.home) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()
