"""What the improve modules need from a finished run: its workspace, splits, arrays and raw scores."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from picsift.data.available import decode_available, skipped_message
from picsift.errors import RunNotFoundError, WorkspaceError
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")


@dataclass
class SplitData:
    """x: uint8 (N, S, S, 3) at the run's storage size; y: int64 (N,) indices into `classes`."""

    x: np.ndarray
    y: np.ndarray
    ids: list[int]
    classes: list[str]


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError as e:
        raise RunNotFoundError(f"{path.parent} is not a complete run folder: {path.name} is missing") from e


def run_workspace(run_dir: Path, ws: Workspace | None = None) -> Workspace:
    """The workspace a run was trained in (recorded in env.json), unless one is given."""
    if ws is not None:
        return ws
    env = read_json(run_dir / "env.json")
    root = env.get("workspace")
    if not root or not (Path(root) / "catalog.sqlite").exists():
        raise WorkspaceError(
            f"run {run_dir.name} was trained in workspace {root!r}, which is not there any more: "
            "pass --workspace to the workspace holding its images"
        )
    return Workspace.open(root)


def split_data(
    run_dir: Path, split: str, ws: Workspace | None = None, limit: int | None = None, seed: int = 0
) -> SplitData:
    """The run's own `split` (train | val | test) images as arrays, in data.json order.

    With `limit`, a seeded random subset (stratification is not needed for the uses here: reference
    samples for drift and feature banks).
    """
    from picsift.models.artifact import read_meta
    from picsift.models.registry import DataConfig

    data = read_json(run_dir / "data.json")
    classes = list(data["classes"])
    ids = list(data.get(f"{split}_ids", []))
    if limit is not None and len(ids) > limit:
        rng = np.random.default_rng(seed)
        ids = sorted(int(i) for i in rng.choice(ids, size=limit, replace=False))
    size = DataConfig.from_dict(read_meta(run_dir)["data_config"]).storage_size
    if not ids:
        return SplitData(np.empty((0, size, size, 3), np.uint8), np.empty(0, np.int64), [], classes)
    workspace = run_workspace(run_dir, ws)
    rows = {r.id: r for r in workspace.catalog.images(ids=ids, readable=None, include_excluded=True)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise WorkspaceError(f"{len(missing)} {split} images of run {run_dir.name} are no longer in the catalog")
    ordered = [rows[i] for i in ids]
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index.get(r.label or "", -1) for r in ordered], dtype=np.int64)
    keep = y >= 0  # images relabelled to a class the run does not know cannot be scored
    ordered = [r for r, k in zip(ordered, keep, strict=True) if k]
    decoded = decode_available(workspace.cache_dir, ordered, size, f"decoding {split} images")
    if decoded.skipped:  # files moved, deleted or corrupted since import
        log.warning("%s images of run %s: %s", split, run_dir.name, skipped_message(decoded.skipped))
    index_of = {r.id: i for i, r in enumerate(ordered)}
    y = y[keep][[index_of[r.id] for r in decoded.rows]]
    return SplitData(decoded.x, y, [r.id for r in decoded.rows], classes)


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Probabilities -> log-probabilities, clipped so that a hard zero stays finite."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
