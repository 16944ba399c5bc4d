"""Content-addressed artifact files and their unpacked copies."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from agentform_runtime.specs import digest_of


class InvalidArtifact(ValueError):
    """The upload is not a usable zip."""


class ArtifactStore:
    """Zips under `root/blobs`, each unpacked once under `root/unpacked` for workers."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.unpacked = root / "unpacked"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.unpacked.mkdir(parents=True, exist_ok=True)

    def _blob(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def put(self, data: bytes) -> str:
        """Store `data` (a zip) durably and return its digest; idempotent."""
        digest = digest_of(data)
        target = self._blob(digest)
        if target.exists():
            return digest
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                bad = archive.testzip()
                names = archive.namelist()
        except zipfile.BadZipFile as exc:
            raise InvalidArtifact(f"artifact is not a zip file: {exc}") from exc
        if bad is not None:
            raise InvalidArtifact(f"artifact member {bad!r} is corrupt")
        unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
        if unsafe:
            raise InvalidArtifact(f"artifact has paths outside its root: {unsafe[:3]}")
        fd, tmp = tempfile.mkstemp(dir=self.blobs)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return digest

    def directory(self, digest: str) -> Path:
        """The unpacked artifact, extracted on first use."""
        target = self.unpacked / digest.removeprefix("sha256:")
        if target.exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=self.unpacked))
        with zipfile.ZipFile(self._blob(digest)) as archive:
            archive.extractall(staging)
        try:
            staging.rename(target)
        except OSError:  # another caller finished first
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def exists(self, digest: str) -> bool:
        return self._blob(digest).exists()

    def read(self, digest: str) -> bytes:
        """The zip itself, for copying it to another host."""
        return self._blob(digest).read_bytes()
