"""Snapshots: the last N epochs' weights of a run (`train --snapshots N`), in `snapshots/epoch-<N>.safetensors`.

The training loops save them here; picsift.improve.snapshots combines them into an ensemble.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from picsift.atomic import atomic_path
from picsift.runs.folder import RunFolder

_NAME = re.compile(r"^epoch-(\d+)\.safetensors$")


def list_snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, file) of a run's snapshots, oldest first."""
    folder = RunFolder(Path(run_dir)).snapshots_dir
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), f) for f in folder.iterdir() if (m := _NAME.match(f.name))]
    return sorted(found)


def save_snapshot(run_dir: Path, model: Any, epoch: int, keep: int) -> Path | None:
    """Write `snapshots/epoch-<epoch>.safetensors` (1-based epoch) and keep only the last `keep`."""
    if keep <= 0:
        return None
    from safetensors.torch import save_file

    folder = RunFolder(Path(run_dir)).snapshots_dir
    folder.mkdir(exist_ok=True)
    path = folder / f"epoch-{epoch}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:  # a kill mid-write leaves no half snapshot under the epoch's name
        save_file(state, str(tmp), metadata={"epoch": str(epoch)})
    for _, old in list_snapshots(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path
