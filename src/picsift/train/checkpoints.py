"""Training checkpoints, written atomically and verified before a resume.

`save_checkpoint(state, RUN/checkpoint.pt)` writes with `torch.save` to a temporary file beside it, flushes it
to disk and renames it over the old checkpoint (picsift.atomic), so a kill at any moment leaves the previous
complete checkpoint. Its SHA-256 and size go to the sidecar `checkpoint.pt.json`:

    {"file": "checkpoint.pt", "sha256": "...", "bytes": 123, "epoch": 4, "written_at": "...",
     "previous": {"sha256": "...", "bytes": 120}}

The sidecar is written (atomically) before the rename and still names the previous checkpoint, so whichever of
the two files a kill leaves in place, the sidecar vouches for it. `verify_checkpoint` / `load_checkpoint` refuse
an empty, cut-short or altered file with one CheckpointError line naming the run.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from picsift.atomic import atomic_path
from picsift.data.hashing import sha256_file
from picsift.errors import CheckpointError
from picsift.jsonio import write_json

log = logging.getLogger("picsift.train")

CHECKPOINT = "checkpoint.pt"
SIDECAR_SUFFIX = ".json"


def sidecar_path(path: Path) -> Path:
    """`checkpoint.pt` -> `checkpoint.pt.json`, the file holding its checksum."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


class _HashingWriter:
    """A binary file that hashes (SHA-256) and counts what goes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        """Write `data`, adding it to the hash and the size; returns the bytes written."""
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        """Flush the underlying file."""
        self.f.flush()


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    import json

    try:
        doc = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("sha256"), str) else None


def checkpoint_epochs(path: Path) -> int | None:
    """The epochs the checkpoint at `path` completed, as its sidecar records them (no checksum read: see
    `verify_checkpoint`); None without a checkpoint or a sidecar that says."""
    record = _read_sidecar(Path(path)) if Path(path).is_file() else None
    epoch = record.get("epoch") if record is not None else None
    return epoch + 1 if isinstance(epoch, int) else None


def save_checkpoint(state: dict[str, Any], path: Path) -> str:
    """Write `state` (a dict of tensors and plain values) to `path` with torch.save, atomically, and record its
    SHA-256 in the sidecar. Returns the hex digest. Raises OSError from the disk (the old checkpoint and its
    sidecar are then untouched)."""
    import torch

    path = Path(path)
    old = _read_sidecar(path) if path.exists() else None
    with atomic_path(path) as tmp:
        with tmp.open("wb") as f:
            writer = _HashingWriter(f)
            torch.save(state, writer)  # type: ignore[arg-type]  # any object with write() will do
            f.flush()
        digest, size = writer.sha.hexdigest(), writer.size
        record: dict[str, Any] = {
            "file": path.name,
            "sha256": digest,
            "bytes": size,
            "epoch": state.get("epoch"),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if old is not None:
            record["previous"] = {"sha256": old["sha256"], "bytes": old.get("bytes")}
        write_json(sidecar_path(path), record)  # before the rename: it vouches for the old and the new file
    return digest


def _damaged(path: Path, why: str, hint: str | None = None) -> CheckpointError:
    run = path.parent.name
    hint = hint or (
        "it was cut short or changed after it was written (a kill or a full disk while saving); "
        "train again without --resume, or resume another run (`picsift runs` lists them)"
    )
    return CheckpointError(f"{path.name} in run {run} is damaged ({why}): {hint}")


def verify_checkpoint(path: Path) -> int | None:
    """Check `path` is a complete checkpoint: not empty; its SHA-256 is the one its sidecar recorded (the new
    or the previous one); without a sidecar (older picsift), a readable zip whose every member's CRC checks.
    Returns the epochs it completed, as its sidecar records them (one fewer when the file on disk is the previous
    checkpoint), None when unknown. Raises CheckpointError (one line naming the run and why), FileNotFoundError
    when it does not exist."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise _damaged(path, "0 bytes")
    record = _read_sidecar(path)
    if record is not None:
        previous = record.get("previous")
        known = {record["sha256"]} | ({previous.get("sha256")} if isinstance(previous, dict) else set())
        digest = sha256_file(path)
        if digest not in known:
            raise _damaged(
                path, f"checksum mismatch: sha256 {digest[:12]}... on disk, {record['sha256'][:12]}... recorded"
            )
        epoch = record.get("epoch")  # the 0-based index of the epoch the recorded checkpoint ended
        if not isinstance(epoch, int):
            return None
        return epoch + 1 if digest == record["sha256"] else epoch
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _damaged(path, f"unreadable, {size} bytes: {e}") from None
    if bad is not None:
        raise _damaged(path, f"checksum mismatch in its member {bad}")
    return None


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """`verify_checkpoint(path)`, then torch.load it. Raises CheckpointError (one line) for a damaged file or
    one torch cannot read, whatever the reason."""
    import torch

    path = Path(path)
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a bad file
        raise _damaged(path, f"unreadable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict):
        raise _damaged(path, f"holds a {type(state).__name__}, not a checkpoint")
    return state
