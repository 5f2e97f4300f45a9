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
import shutil
import tempfile
from pathlib import Path

from picsift.config import check_number
from picsift.errors import RunNotFoundError
from picsift.improve.ensemble import make_ensemble
from picsift.models.artifact import META_FILE, WEIGHTS_FILE, read_meta
from picsift.runs import RunFolder
from picsift.runs.snapshots import list_snapshots, save_snapshot
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
__all__ = ["list_snapshots", "make_snapshot_ensemble", "save_snapshot"]


def make_snapshot_ensemble(
    run_dir: Path,
    *,
    method: str = "mean",
    last: int | None = None,
    ws: Workspace | None = None,
    name: str | None = None,
) -> Path:
    """An ensemble run from `run_dir`'s snapshots (the `last` N of them, default all); returns its path."""
    run_dir = Path(run_dir).resolve()
    source = RunFolder(run_dir)
    meta = read_meta(run_dir)
    snaps = list_snapshots(run_dir)
    if last is not None:
        check_number(last, "--last (snapshots)", low=2, whole=True)
        snaps = snaps[-last:]
    if meta["family"] in ("classical", "ensemble") or len(snaps) < 2:
        raise RunNotFoundError(
            f"run {run_dir.name} has {len(snaps)} snapshot(s) in {source.snapshots_dir.name}/ ({meta['family']} model): "
            "a snapshot ensemble needs at least 2; train a network with `picsift train --snapshots 3`"
        )
    tmp = Path(tempfile.mkdtemp(prefix="picsift-snapshots-"))
    try:
        members = []
        for epoch, weights in snaps:
            # A member is a minimal run folder: the run's artifact with this epoch's weights, and its
            # data.json/env.json so the ensemble finds the same validation images and workspace.
            member = RunFolder(tmp / f"{run_dir.name}@epoch-{epoch}")
            member.artifact_dir.mkdir(parents=True)
            shutil.copyfile(source.artifact_dir / META_FILE, member.artifact_dir / META_FILE)
            shutil.copyfile(weights, member.artifact_dir / WEIGHTS_FILE)
            member.write_data_split(source.read_data_split())
            member.write_env(source.read_env())
            members.append(member.path)
        out = make_ensemble(members, method=method, ws=ws, name=name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    made = RunFolder(out)
    config = made.read_config()
    config["ensemble"]["snapshots_of"] = run_dir.name
    config["ensemble"]["epochs"] = [e for e, _ in snaps]
    made.write_config(config)
    log.info("snapshot ensemble of %s (epochs %s) -> %s", run_dir.name, [e for e, _ in snaps], out.name)
    return out
