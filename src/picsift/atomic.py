"""Atomic file writes: a file is either the old one or the complete new one, never a half-written mix.

`atomic_path(path)` hands out a temporary name in the same folder; when the caller's block ends without an
error the temporary file is flushed to disk (fsync), renamed over `path` (`os.replace`, atomic within one file
system) and the folder entry is flushed too. A crash, an exception or a SIGKILL at any point leaves `path` as it
was (plus, at worst, a stray temporary file that `remove_stale_temps` clears at the next write).
`atomic_folder(dest)` does the same for a whole folder of files (an export): filled under a partial name,
renamed when complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from picsift.errors import disk_error

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
    removed first. Raises DiskError when the disk is full or read-only (whatever the writer raised: torch and
    safetensors report a full disk in their own words), else the writer's error."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except Exception as e:
        full = disk_error(e, path)  # judged before the temporary file frees its space
        tmp.unlink(missing_ok=True)
        if full is not None and full is not e:
            raise full from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


_PARTIAL_DIR = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


def partial_folder(dest: Path) -> Path:
    """The folder `atomic_folder` fills before renaming it to `dest`: `.NAME.partial-<pid>` beside it (hidden, and
    named partial, so no reader takes it for the finished folder)."""
    return dest.with_name(f".{dest.name}.partial-{os.getpid()}")


def remove_stale_partial_folders(dest: Path) -> list[Path]:
    """Remove the partial folders of `dest` that killed writers left (their process no longer runs); returns them."""
    removed: list[Path] = []
    folder = dest.parent
    if not folder.is_dir():
        return removed
    for f in folder.iterdir():
        m = _PARTIAL_DIR.match(f.name)
        if m and m.group("name") == dest.name and f.is_dir() and not pid_alive(int(m.group("pid"))):
            shutil.rmtree(f, ignore_errors=True)
            removed.append(f)
    return removed


@contextlib.contextmanager
def partial_folder_for(dest: Path) -> Iterator[Path]:
    """This process's empty partial folder for `dest` (`partial_folder`), removed when the block raises; a write
    that failed for a full or read-only disk is raised as DiskError (whatever library raised it)."""
    tmp = partial_folder(dest)
    if tmp.exists():  # this process's own, from a write that failed without cleaning up
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        yield tmp
    except Exception as e:
        full = disk_error(e, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None and full is not e:
            raise full from e
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_folder(dest: str | Path) -> Iterator[Path]:
    """Yield an empty partial folder to fill; on a clean exit it is renamed to `dest` (which must not exist, or be an
    empty folder), so `dest` is either absent or complete. On an exception the partial folder is removed; a
    SIGKILL leaves it, hidden and named partial, and the next `atomic_folder(dest)` removes it. Raises DiskError
    when the disk is full or read-only, OSError when `dest` is a non-empty folder at the rename."""
    dest = Path(dest)
    remove_stale_partial_folders(dest)
    with partial_folder_for(dest) as tmp:
        yield tmp
        os.rename(tmp, dest)
    fsync_dir(dest.parent)
