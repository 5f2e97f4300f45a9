"""Reading one entry: its bytes (from disk or the network), content hash and decoded metadata.

Runs in a thread pool: hashing and Pillow's decoders release the GIL, and downloads wait on I/O.
Every failure becomes a reason string on the result; nothing here raises for a bad file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from picsift.data.formats import IMAGE_EXTENSIONS, unavailable_reason
from picsift.data.hashing import sha256_file
from picsift.data.images import ImageInfo, probe
from picsift.data.storage import is_remote, read_bytes
from picsift.errors import ImageDecodeError, StorageError
from picsift.ingest.sources import Entry
from picsift.ingest.urls import download

# Files above this are hashed but not decoded: no photograph is this large, a video might be.
MAX_DECODE_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class Probed:
    """One entry read: the file recorded, its hash and size, and its image info or why it did not decode."""

    entry: Entry
    path: str  # the file recorded (for a URL: the downloaded copy; the URL itself if that failed)
    sha256: str  # "" when the bytes could not be read at all
    byte_size: int
    info: ImageInfo | None = None
    error: str | None = None
    unchanged: bool = False  # same path and bytes as a catalog row already: decoding was skipped

    @property
    def readable(self) -> bool:
        """Whether the file decoded as an image."""
        return self.info is not None and self.error is None


@dataclass(frozen=True)
class DownloadSettings:
    """How URLs are downloaded: into which folder, timeout (s), retries and the largest size (bytes)."""

    dest_dir: Path
    timeout_s: float
    retries: int
    max_bytes: int


def read_entry(entry: Entry, known: dict[str, str], downloads: DownloadSettings) -> Probed:
    """Hash and decode one entry. `known` maps catalog paths to their sha256 (to skip re-decoding)."""
    if entry.url is not None:
        got = download(
            entry.url,
            downloads.dest_dir,
            timeout_s=downloads.timeout_s,
            retries=downloads.retries,
            max_bytes=downloads.max_bytes,
        )
        if got.data is None or got.path is None:
            return Probed(entry, entry.url, "", 0, error=f"download failed: {got.error}")
        data, path = got.data, got.path
    elif is_remote(entry.path):  # an object in object storage: its URL is its path in the catalog
        path = entry.path
        try:
            data = read_bytes(path)
        except StorageError as e:
            return Probed(entry, path, "", 0, error=f"cannot read object: {e}")
        if len(data) > MAX_DECODE_BYTES:
            sha = hashlib.sha256(data).hexdigest()
            return Probed(entry, path, sha, len(data), error=f"file too large to decode ({len(data) / 1e6:.0f} MB)")
    else:
        path = entry.path
        try:
            size = os.stat(path).st_size
            if size > MAX_DECODE_BYTES:
                sha = sha256_file(path)
                return Probed(entry, path, sha, size, error=f"file too large to decode ({size / 1e6:.0f} MB)")
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            return Probed(entry, path, "", 0, error=f"cannot read file: {e.strerror or e}")
    sha = hashlib.sha256(data).hexdigest()
    if known.get(path) == sha:
        return Probed(entry, path, sha, len(data), unchanged=True)
    try:
        return Probed(entry, path, sha, len(data), info=probe(data))
    except ImageDecodeError as e:
        reason = str(e)
    except Exception as e:  # a decoder bug on one file must not stop the import
        reason = f"cannot decode: {type(e).__name__}: {e}"
    ext = os.path.splitext(path.rsplit("/", 1)[-1] if is_remote(path) else path)[1].lower()
    if reason.startswith("not an image") and entry.url is None and ext not in IMAGE_EXTENSIONS:
        reason = unavailable_reason(ext) or f"not an image file ({ext or 'no extension'})"
    return Probed(entry, path, sha, len(data), error=reason)
