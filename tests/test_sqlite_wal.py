"""Opening a new SQLite file from several connections at once: SQLite refuses the switch to WAL mode at once
("database is locked", its busy handler not consulted) while another connection sets the file up, so every
picsift SQLite file (the catalog, the decoded-image cache) goes through `ensure_wal`, which retries."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from picsift.data.cache import DecodedCache
from picsift.sqlite_wal import ensure_wal


def _all_at_once(n: int, work: Callable[[], object]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run() -> None:
        start.wait()
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_connections_creating_a_new_file_together_all_get_wal(tmp_path: Path) -> None:
    for round_ in range(150):  # a plain `PRAGMA journal_mode=WAL` fails in about one round in ten
        path = tmp_path / f"new-{round_}.sqlite"

        def open_it(path: Path = path) -> None:
            db = sqlite3.connect(path, timeout=10)
            try:
                ensure_wal(db, 10)
                db.execute("CREATE TABLE IF NOT EXISTS t (x)")
            finally:
                db.close()

        assert _all_at_once(8, open_it) == []
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _held(path: Path) -> sqlite3.Connection:
    """A connection holding the database `path` (still in rollback-journal mode) with an exclusive lock."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_waits_for_a_lock_released_in_time(tmp_path: Path) -> None:
    path = tmp_path / "held.sqlite"
    holder = _held(path)
    threading.Timer(0.3, holder.rollback).start()
    db = sqlite3.connect(path, timeout=0)  # no busy handler: only ensure_wal's own retries wait
    started = time.monotonic()
    ensure_wal(db, 10)
    assert time.monotonic() - started >= 0.25
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    holder.close()


def test_gives_up_with_sqlites_error_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "held.sqlite"
    holder = _held(path)
    db = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        ensure_wal(db, 0.2)
    holder.rollback()
    holder.close()
    db.close()


def test_processes_opening_one_new_decoded_cache_together(tmp_path: Path) -> None:
    for round_ in range(10):
        cache_dir = tmp_path / f"cache-{round_}"
        assert _all_at_once(6, lambda cache_dir=cache_dir: DecodedCache(cache_dir, 32)) == []
        assert DecodedCache(cache_dir, 32).get_available([], "none")[0].shape[0] == 0
