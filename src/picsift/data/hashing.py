"""File digests: the one sha256 of a file's bytes, read in chunks so large files never sit in memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time


def sha256_file(path: str | Path) -> str:
    """The sha256 of the file's bytes as 64 lowercase hex digits. Raises OSError when it cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
