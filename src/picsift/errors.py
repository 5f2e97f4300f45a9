"""Typed exceptions. The CLI maps each to one line and exit code 2; the server maps them to 4xx."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class PicsiftError(Exception):
    """Base class of every error picsift raises on purpose, with an actionable message."""


class Interrupted(KeyboardInterrupt):
    """Ctrl+C (SIGINT) during a command whose library code knows what the interruption left behind: `note` says
    it in one line (a run kept at epoch N and how to resume it, or that nothing was written). A KeyboardInterrupt,
    so whatever stops on Ctrl+C stops on it; the CLI prints `interrupted: <note>` and exits 130."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class ConfigError(PicsiftError):
    """A setting or flag is invalid or a combination of settings makes no sense."""


class WorkspaceError(PicsiftError):
    """The workspace is missing, empty, or not usable for the requested operation."""


class NotFoundError(WorkspaceError):
    """A record asked for by id (an image, a feedback item) is not in the workspace's catalog."""


class ConflictError(PicsiftError):
    """A write lost to a concurrent change: the record changed since the caller read it."""


class DatasetError(PicsiftError):
    """Input data (a folder, manifest, archive, URL list) is malformed."""


class ImageDecodeError(PicsiftError):
    """An image could not be decoded; the message says why."""


class ModelNotFoundError(PicsiftError):
    """A model name is not in the registry."""


class WeightsNotAvailableError(PicsiftError):
    """Pretrained weights were asked for but cannot be loaded."""


class RunError(PicsiftError):
    """A run folder cannot be used: base of RunNotFoundError and RunCorruptError."""


class RunNotFoundError(RunError):
    """A run id or folder does not exist, or lacks a file the operation needs."""


class RunCorruptError(RunError):
    """A run folder's file exists but cannot be read: invalid JSON, a wrong shape, missing keys."""


class LabelError(ConfigError):
    """A label (class name) is not usable: not text, or empty once surrounding spaces are removed."""


class UnsafePathError(PicsiftError):
    """A path built from user-supplied text would lie outside the folder it was meant for."""


class CheckpointError(PicsiftError):
    """A training checkpoint cannot be resumed from: empty, cut short, or not the bytes that were written."""


class StorageError(DatasetError):
    """Object storage or a URL cannot be read or written: a missing bucket or object, no credentials, access
    denied, an endpoint that cannot be reached. The message names the URL."""


class DiskError(WorkspaceError):
    """A write failed because the disk is full or the file system is read-only; what was stored before stays."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FULL_TEXTS = ("no space left on device", "database or disk is full", "os error 28", "disk quota exceeded")
_READ_ONLY_TEXTS = ("read-only file system", "readonly database", "os error 30")
_NEARLY_FULL_BYTES = 1 << 20  # under 1 MiB free after a failed write: the write ran out of space


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _file_system_state(path: Path) -> tuple[bool, int] | None:
    """(read-only, bytes free to an unprivileged user) of the file system holding `path`; None when unknown."""
    try:
        st = os.statvfs(_existing(path))
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return None
    return bool(st.f_flag & os.ST_RDONLY), st.f_bavail * st.f_frsize


def _message(kind: str, path: Path | None) -> str:
    where = f"cannot write {path}" if path is not None else "cannot write to the disk"
    if kind == "read-only":
        return f"{where}: the file system is read-only; make it writable (or use another workspace) and run again"
    state = _file_system_state(path) if path is not None else None
    free = f" ({state[1] // 1024} KiB free)" if state is not None else ""
    return f"{where}: the disk is full{free}; free some space and run the command again"


def disk_error(exc: BaseException, path: str | Path | None = None) -> DiskError | None:
    """A DiskError naming the path and the cause (disk full, read-only file system) when `exc` is a write that
    failed for want of space or write access, else None.

    Recognised: an OSError with errno ENOSPC, EDQUOT, EFBIG or EROFS; a message saying so (SQLite's "database or
    disk is full" / "attempt to write a readonly database", Rust's "os error 28"); any other failure of a write
    to `path` when its file system is read-only or has under 1 MiB left (torch.save reports a full disk as
    "unexpected pos"; SQLite as "disk I/O error" when it cannot create its shared-memory file).
    """
    if isinstance(exc, DiskError):
        return exc
    if isinstance(exc, PicsiftError):
        return None
    if path is None and isinstance(exc, OSError) and exc.filename:
        path = os.fsdecode(exc.filename)
    where = Path(path) if path is not None else None
    text = f"{exc} {getattr(exc, 'orig', '')}".lower()
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.EROFS or any(t in text for t in _READ_ONLY_TEXTS):
        return DiskError(_message("read-only", where))
    if code in _FULL_ERRNOS or any(t in text for t in _FULL_TEXTS):
        return DiskError(_message("full", where))
    state = _file_system_state(where) if where is not None else None
    if state is not None and state[0]:
        return DiskError(_message("read-only", where))
    if state is not None and state[1] < _NEARLY_FULL_BYTES:
        return DiskError(_message("full", where))
    return None


class DistributedError(PicsiftError):
    """Training in several processes (torchrun) failed as a group: the processes could not form their group in
    time, or another process of the run failed or stopped answering."""
