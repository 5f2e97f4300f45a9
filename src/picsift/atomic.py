"""Atomic file writes: a file is either the old one or the complete new one, never a half-written mix.

`atomic_path(path)` hands out a temporary name in the same folder; when the caller's block ends without an
error the temporary file is flushed to disk (fsync), renamed over `path` (`os.replace`, atomic within one file
system) and the folder entry is flushed too. A crash, an exception or a SIGKILL at any point leaves `path` as it
was (plus, at worst, a stray temporary file that `remove_stale_temps` clears at the next write).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.\d+\.tmp$")


def temp_name(path: Path) -> Path:
    """The temporary name `atomic_path` writes `path` under: `.NAME.<pid>.<thread>.tmp` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def fsync_file(path: Path) -> None:
    """Flush `path`'s data to the disk (a no-op where the OS offers no fsync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to the disk; silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (a process of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files earlier writes of `path` left behind (their process no longer runs).
    Returns the files removed."""
    removed: list[Path] = []
    folder = path.parent
    if not folder.is_dir():
        return removed
    for f in folder.iterdir():
        m = _TEMP.match(f.name)
        if m and m.group("name") == path.name and not pid_alive(int(m.group("pid"))):
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; on a clean exit it replaces `path` atomically
    (fsync of the file, os.replace, fsync of the folder). On any exception the temporary file is removed,
    `path` is untouched and the exception propagates. Temporary files of `path` that killed writers left are
    removed first. Raises OSError from the disk."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
