"""The server's prediction log: one JSON line per prediction, bounded on disk.

Lines go to `<workspace>/predictions/<date>.jsonl` (UTC date). A file that would grow past `max_bytes` is
renamed `<date>.<n>.jsonl` (n = 1, 2, ...) and a new one started; only the newest `keep_files` files of the
folder are kept, so the log never holds more than about `keep_files * max_bytes` bytes (a line is never split).
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from picsift.jsonio import dumps

log = logging.getLogger("picsift.serve")

_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.jsonl$")


def _order(path: Path) -> tuple[str, int]:
    """Oldest first: by date, then the rotated parts (1, 2, ...) before the day's current file."""
    m = _NAME.match(path.name)
    assert m is not None
    return m.group(1), int(m.group(2)) if m.group(2) else 1 << 30


class PredictionLog:
    """Append-only JSON lines under `folder`, rotated by size (see the module docstring)."""

    def __init__(self, folder: Path, max_bytes: int = 16 * 1024 * 1024, keep_files: int = 10) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        """The log's files, oldest first."""
        return sorted((p for p in self.folder.iterdir() if _NAME.match(p.name)), key=_order)

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append one line per record. Raises OSError from the disk."""
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        data = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
        path = self.folder / f"{day}.jsonl"
        with self._lock:
            size = path.stat().st_size if path.exists() else 0
            if size and size + len(data) > self.max_bytes:
                self._rotate(path, day)
            with path.open("ab") as f:
                f.write(data)

    def _rotate(self, path: Path, day: str) -> None:
        """Rename the day's full file to its next part number, then drop the oldest files beyond the limit
        (room is left for the current file, about to be started)."""
        taken = [
            int(m.group(2))
            for p in self.folder.iterdir()
            if (m := _NAME.match(p.name)) and m.group(1) == day and m.group(2)
        ]
        path.rename(self.folder / f"{day}.{max(taken, default=0) + 1}.jsonl")
        files = self.files()
        for old in files[: max(0, len(files) - (self.keep_files - 1))]:
            old.unlink(missing_ok=True)
            log.info("prediction log: removed %s (the newest %d files are kept)", old.name, self.keep_files)
