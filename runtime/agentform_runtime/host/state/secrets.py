"""Encryption at rest for connection secrets (Fernet, key file beside the database)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet


def _private_file(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def read_or_create(path: Path, make: bytes) -> bytes:
    """Return the content of a 0600 file, creating it with `make` on first use."""
    with contextlib.suppress(FileExistsError):
        _private_file(path, make)
    return path.read_bytes().strip()


class SecretBox:
    """Encrypts dicts of secret values; the key never leaves the state directory."""

    def __init__(self, key_file: Path) -> None:
        self._fernet = Fernet(read_or_create(key_file, Fernet.generate_key()))

    def seal(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, token: str) -> dict[str, str]:
        return dict(json.loads(self._fernet.decrypt(token.encode())))
