"""Decoded-image cache: each image decoded and resized once, stored as uint8 keyed by (sha256, size).

Later epochs and later runs read raw pixels from one SQLite file per size instead of re-decoding
JPEGs; one file beats 50,000 tiny ones for both speed and inode count.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np

from picsift import progress
from picsift.data.images import load_rgb, resize_square
from picsift.data.presence import file_problem
from picsift.data.storage import image_source
from picsift.errors import ImageDecodeError, StorageError, disk_error
from picsift.pools import thread_pool
from picsift.sqlite_wal import ensure_wal

BUSY_TIMEOUT_S = 30.0


def decode_square(path: str | Path | bytes, size: int) -> np.ndarray:
    """An image file, URL or its bytes -> uint8 (size, size, 3): shorter side to `size`, centre crop.
    ImageDecodeError when it cannot be decoded."""
    return resize_square(load_rgb(path), size)


@contextmanager
def sqlite_file(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the SQLite cache file `path` (WAL, 30 s busy timeout), committed when the block ends without
    an error (rolled back otherwise) and closed. Raises DiskError when the disk is full or read-only."""
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        try:
            ensure_wal(db, BUSY_TIMEOUT_S)
            with db:
                yield db
        finally:
            db.close()
    except sqlite3.Error as e:
        full = disk_error(e, path)
        if full is None:
            raise
        raise full from e


class DecodedCache:
    """Decoded uint8 (size, size, 3) pixels by image sha256, in cache_dir/decoded-<size>.sqlite, so each
    image is decoded once per size."""

    def __init__(self, cache_dir: Path, size: int) -> None:
        self.size = size
        self.cache_dir = cache_dir  # also holds the bytes of images in object storage (`storage.image_source`)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"decoded-{size}.sqlite"
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS pixels (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)")

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_file(self.path)

    def get_many(self, items: Sequence[tuple[str, str]], description: str = "decoding images") -> np.ndarray:
        """items: (sha256, path) pairs -> uint8 array (N, size, size, 3) in the same order.

        Raises ImageDecodeError naming the file when one is gone from disk or does not decode; stages that
        would rather skip such images use `get_available` (through `picsift.data.available`).
        """
        x, failed = self.get_available(items, description)
        if failed:
            index, why = next(iter(failed.items()))
            raise ImageDecodeError(f"{items[index][1]}: {why}")
        return x

    def _cached(self, wanted: set[str]) -> dict[str, bytes]:
        """The cached pixels of the hashes in `wanted` that the cache holds."""
        found: dict[str, bytes] = {}
        with self._connect() as db:
            keys = list(wanted)
            for i in range(0, len(keys), 900):
                chunk = keys[i : i + 900]
                marks = ",".join("?" * len(chunk))
                for sha, blob in db.execute(f"SELECT sha256, data FROM pixels WHERE sha256 IN ({marks})", chunk):
                    found[sha] = blob
        return found

    def _decode_new(self, paths: dict[str, str], found: dict[str, bytes], description: str) -> dict[str, str]:
        """Decode {sha256: path} not cached yet into `found` (and the cache); returns {sha256: why} for failures."""
        s = self.size

        def work(entry: tuple[str, str]) -> tuple[str, bytes | str]:
            sha, path = entry
            try:
                return sha, decode_square(image_source(path, sha, self.cache_dir), s).tobytes()
            except StorageError as e:
                return sha, f"cannot be read: {e}"
            except ImageDecodeError as e:
                return sha, str(e)
            except OSError:
                return sha, file_problem(path) or "cannot be read"

        errors: dict[str, str] = {}
        # PIL releases the GIL while decoding, so threads give real parallelism here.
        with thread_pool(4) as pool:
            results = pool.map(work, paths.items())
            new: list[tuple[str, bytes]] = []
            for sha, blob in progress.track(results, description, total=len(paths)):
                if isinstance(blob, str):
                    errors[sha] = blob
                    continue
                found[sha] = blob
                new.append((sha, blob))
                if len(new) >= 2000:
                    self._store(new)
                    new = []
            self._store(new)
        return errors

    def get_available(
        self, items: Sequence[tuple[str, str]], description: str = "decoding images"
    ) -> tuple[np.ndarray, dict[int, str]]:
        """items: (sha256, path) pairs -> (uint8 array (M, size, size, 3) of the items that decoded, in order;
        {index into items: why it did not} for the others). Pixels already cached are served from the cache
        whether or not the file is still there."""
        n, s = len(items), self.size
        wanted = {sha for sha, _ in items}
        found = self._cached(wanted)
        first_path: dict[str, str] = {}
        for sha, path in items:
            if sha not in found:
                first_path.setdefault(sha, path)
        errors = self._decode_new(first_path, found, description) if first_path else {}
        failed = {i: errors[sha] for i, (sha, _) in enumerate(items) if sha in errors}
        out = np.empty((n - len(failed), s, s, 3), dtype=np.uint8)
        k = 0
        for i, (sha, _) in enumerate(items):
            if i not in failed:
                out[k] = np.frombuffer(found[sha], dtype=np.uint8).reshape(s, s, 3)
                k += 1
        return out, failed

    def _store(self, rows: list[tuple[str, bytes]]) -> None:
        if rows:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO pixels VALUES (?, ?)", rows)
