"""Feature cache: one SQLite file per extractor under `<workspace>/cache/features/`, keyed by image sha256.

Features depend only on the pixels and the extractor, so identical bytes under two paths share one row,
and every command (features, train, compare, cluster, curate) reuses what any other computed.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from picsift.data.cache import sqlite_file


def store_path(cache_dir: Path, key: str) -> Path:
    """A readable, collision-free file name for an extractor's cache key."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-")[:60]
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return cache_dir / "features" / f"{slug}-{digest}.sqlite"


class FeatureStore:
    """float32 vectors of one extractor, by image sha256."""

    def __init__(self, cache_dir: Path, key: str) -> None:
        self.key = key
        self.path = store_path(cache_dir, key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS features (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('extractor', ?)", (key,))

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_file(self.path)

    def get(self, shas: Sequence[str]) -> dict[str, np.ndarray]:
        """{sha256: float32 vector (D,)} for the shas that have a stored vector (the others are absent)."""
        found: dict[str, np.ndarray] = {}
        keys = list(dict.fromkeys(shas))
        with self._connect() as db:
            for i in range(0, len(keys), 900):
                chunk = keys[i : i + 900]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT sha256, data FROM features WHERE sha256 IN ({marks})", chunk)
                for sha, blob in rows:
                    found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, shas: Sequence[str], features: np.ndarray) -> None:
        """Store (or replace) one float32 vector per sha; `features` is (N, D) with N == len(shas)."""
        rows = [
            (sha, np.ascontiguousarray(f, dtype=np.float32).tobytes()) for sha, f in zip(shas, features, strict=True)
        ]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?)", rows)

    def count(self) -> int:
        """The number of stored vectors."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM features").fetchone()[0])
