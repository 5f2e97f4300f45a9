"""Snapshot ensembles: the weights of a run's last N epochs, combined like any ensemble.

`picsift train --snapshots N` (TrainConfig.snapshots) makes the training loops (the standard loop
and the fast CNN recipe) call `save_snapshot` after every epoch, keeping the last N:

    RUN/snapshots/epoch-7.safetensors     the model's state dict after epoch 7 (safetensors,
    RUN/snapshots/epoch-8.safetensors     metadata {"model": name, "epoch": "8"}); same architecture
    ...                                   and constructor kwargs as RUN/model/model.json

`make_snapshot_ensemble(run_dir)` turns them into a normal ensemble run (improve.ensemble): each
snapshot becomes a member artifact (the run's model.json + that epoch's weights), so the result
evaluates, predicts, calibrates, exports and serves like any run. Snapshots late in one run cost no
extra training; they disagree less than independently trained models, so expect a smaller gain
than a 3-run ensemble, mostly in calibration (NLL/ECE) and a little in accuracy.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from picsift.atomic import atomic_path
from picsift.errors import ConfigError, RunNotFoundError
from picsift.models.artifact import ARTIFACT_DIR, META_FILE, WEIGHTS_FILE, read_meta
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
SNAPSHOT_DIR = "snapshots"
_NAME = re.compile(r"^epoch-(\d+)\.safetensors$")


def list_snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, file) of a run's snapshots, oldest first."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), f) for f in folder.iterdir() if (m := _NAME.match(f.name))]
    return sorted(found)


def save_snapshot(run_dir: Path, model: Any, epoch: int, keep: int) -> Path | None:
    """Write `snapshots/epoch-<epoch>.safetensors` (1-based epoch) and keep only the last `keep`."""
    if keep <= 0:
        return None
    from safetensors.torch import save_file

    folder = Path(run_dir) / SNAPSHOT_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"epoch-{epoch}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:  # a kill mid-write leaves no half snapshot under the epoch's name
        save_file(state, str(tmp), metadata={"epoch": str(epoch)})
    for _, old in list_snapshots(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def make_snapshot_ensemble(
    run_dir: Path,
    *,
    method: str = "mean",
    last: int | None = None,
    ws: Workspace | None = None,
    name: str | None = None,
) -> Path:
    """An ensemble run from `run_dir`'s snapshots (the `last` N of them, default all); returns its path."""
    import json

    from picsift.improve.ensemble import make_ensemble
    from picsift.train.runs import write_json

    run_dir = Path(run_dir).resolve()
    meta = read_meta(run_dir)
    snaps = list_snapshots(run_dir)
    if last is not None:
        if last < 2:
            raise ConfigError(f"--last must be at least 2, got {last}")
        snaps = snaps[-last:]
    if meta["family"] in ("classical", "ensemble") or len(snaps) < 2:
        raise RunNotFoundError(
            f"run {run_dir.name} has {len(snaps)} snapshot(s) in {SNAPSHOT_DIR}/ ({meta['family']} model): "
            "a snapshot ensemble needs at least 2; train a network with `picsift train --snapshots 3`"
        )
    tmp = Path(tempfile.mkdtemp(prefix="picsift-snapshots-"))
    try:
        members = []
        for epoch, weights in snaps:
            # A member is a minimal run folder: the run's artifact with this epoch's weights, and its
            # data.json/env.json so the ensemble finds the same validation images and workspace.
            member = tmp / f"{run_dir.name}@epoch-{epoch}"
            (member / ARTIFACT_DIR).mkdir(parents=True)
            shutil.copyfile(run_dir / ARTIFACT_DIR / META_FILE, member / ARTIFACT_DIR / META_FILE)
            shutil.copyfile(weights, member / ARTIFACT_DIR / WEIGHTS_FILE)
            for f in ("data.json", "env.json"):
                shutil.copyfile(run_dir / f, member / f)
            members.append(member)
        out = make_ensemble(members, method=method, ws=ws, name=name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    config = json.loads((out / "config.json").read_text())
    config["ensemble"]["snapshots_of"] = run_dir.name
    config["ensemble"]["epochs"] = [e for e, _ in snaps]
    write_json(out / "config.json", config)
    log.info("snapshot ensemble of %s (epochs %s) -> %s", run_dir.name, [e for e, _ in snaps], out.name)
    return out
