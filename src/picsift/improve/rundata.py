"""What the improve modules need from a finished run: its splits as arrays, decoded from its workspace."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from picsift.data.available import decode_available, skipped_message
from picsift.errors import WorkspaceError
from picsift.models.artifact import read_meta
from picsift.models.registry import DataConfig
from picsift.runs import RunFolder, run_workspace
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")


@dataclass
class SplitData:
    """x: uint8 (N, S, S, 3) at the run's storage size; y: int64 (N,) indices into `classes`."""

    x: np.ndarray
    y: np.ndarray
    ids: list[int]
    classes: list[str]


def split_data(
    run_dir: Path | RunFolder, split: str, ws: Workspace | None = None, limit: int | None = None, seed: int = 0
) -> SplitData:
    """The run's own `split` (train | val | test) images as arrays, in data.json order.

    With `limit`, a seeded random subset (stratification is not needed for the uses here: reference
    samples for drift and feature banks).
    """
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    data = run.read_data_split()
    classes = list(data["classes"])
    ids = list(data.get(f"{split}_ids", []))
    if limit is not None and len(ids) > limit:
        rng = np.random.default_rng(seed)
        ids = sorted(int(i) for i in rng.choice(ids, size=limit, replace=False))
    size = DataConfig.from_dict(read_meta(run.path)["data_config"]).storage_size
    if not ids:
        return SplitData(np.empty((0, size, size, 3), np.uint8), np.empty(0, np.int64), [], classes)
    workspace = run_workspace(run, ws)
    rows = {r.id: r for r in workspace.catalog.images(ids=ids, readable=None, include_excluded=True)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise WorkspaceError(f"{len(missing)} {split} images of run {run.name} are no longer in the catalog")
    ordered = [rows[i] for i in ids]
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index.get(r.label or "", -1) for r in ordered], dtype=np.int64)
    keep = y >= 0  # images relabelled to a class the run does not know cannot be scored
    ordered = [r for r, k in zip(ordered, keep, strict=True) if k]
    decoded = decode_available(workspace.cache_dir, ordered, size, f"decoding {split} images")
    if decoded.skipped:  # files moved, deleted or corrupted since import
        log.warning("%s images of run %s: %s", split, run.name, skipped_message(decoded.skipped))
    index_of = {r.id: i for i, r in enumerate(ordered)}
    y = y[keep][[index_of[r.id] for r in decoded.rows]]
    return SplitData(decoded.x, y, [r.id for r in decoded.rows], classes)
