"""The media store: files named by their SHA-256 under the data directory."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from bot.core.events import Attachment, AttachmentKind


class MediaTooLarge(Exception):
    """A file is larger than the deployment allows."""


class MediaStore:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def path_for(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256

    async def save(
        self, data: bytes, kind: AttachmentKind, file_name: str = "", mime_type: str = ""
    ) -> Attachment:
        """Store `data` once under its hash and describe it; refuses files over the limit."""
        if len(data) > self.max_bytes:
            raise MediaTooLarge(f"{len(data)} bytes > {self.max_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if not path.exists():
            await asyncio.to_thread(self._write, path, data)
        return Attachment(
            kind=kind,
            sha256=digest,
            size=len(data),
            file_name=Path(file_name).name[:255],
            mime_type=mime_type[:128],
        )

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)
