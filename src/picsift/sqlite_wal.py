"""Putting a SQLite database in WAL mode safely when several connections open it at once."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def ensure_wal(db: sqlite3.Connection | Any, timeout_s: float) -> None:
    """Put the database of `db` (a sqlite3 connection or cursor) in WAL mode, which lets readers go on while one
    connection writes. The mode is stored in the file, so this is a cheap read once it is set.

    The switch needs the database to itself, and SQLite answers "database is locked" at once, without waiting
    through its busy handler, while another connection holds a lock (several processes opening a new database
    together). This retries with a growing pause until `timeout_s` seconds have passed, then raises that
    sqlite3.OperationalError. Other errors are raised at once.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            busy = "locked" in str(e) or "busy" in str(e)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
