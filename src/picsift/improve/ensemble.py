"""Ensembles: average (or validation-weighted) probabilities of several runs -> a new run folder.

The ensemble is a normal run of family "ensemble": `model/model.json` lists its members, whose
artifacts are copied into `model/members/<i>/` so the folder stands alone (export, serve, move it).
Members may be any family (fast CNN, backbones, classical models, even other ensembles) as long as
they share the same classes in the same order. Each member sees the input resized to its own
storage size, so members trained at different resolutions combine too.

model.json of an ensemble:
    {"model": "ensemble", "family": "ensemble", "classes": [...], "data_config": {...},
     "model_kwargs": {}, "extra": {"method": "mean" | "weighted", "weights": [w_0, ...],
                                   "members": [{"dir": "members/0", "run_id": ..., "model": ...}, ...]}}

Weighted: convex weights minimising validation NLL of the mixture (softmax-parametrised, LBFGS).
That needs one validation set shared by all members (same seed and data), or the weights would be
fitted on images some member trained on.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift.errors import ConfigError
from picsift.improve.rundata import read_json, split_data
from picsift.models.artifact import ARTIFACT_DIR, META_FILE, Artifact, load_artifact
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
MEMBERS_DIR = "members"


def load_members(folder: Path, meta: dict[str, Any], device: str = "cpu") -> list[Artifact]:
    """An ensemble artifact's members (the `model` attribute of an ensemble Artifact)."""
    return [load_artifact(folder / m["dir"], device=device) for m in meta["extra"]["members"]]


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size:
        return x
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def predict_ensemble(artifact: Artifact, x: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, S, S, 3) -> weighted mean of the members' probabilities (N, K)."""
    from picsift.deploy.predictor import Predictor

    weights = artifact.extra["weights"]
    total = np.zeros((len(x), artifact.num_classes), dtype=np.float64)
    for member, w in zip(artifact.model, weights, strict=True):
        p = Predictor(member, device=str(device))
        total += w * p.predict_raw(_resize(x, member.data_config.storage_size), batch_size)
    return total.astype(np.float32)


def fit_weights(member_probs: list[np.ndarray], y: np.ndarray, steps: int = 50) -> list[float]:
    """Convex weights minimising NLL of sum_m w_m p_m on (y); uniform when there is nothing to fit."""
    m = len(member_probs)
    if m == 1 or len(y) == 0:
        return [1.0 / m] * m
    stacked = torch.from_numpy(np.stack([np.asarray(p, np.float64) for p in member_probs]))  # (M, N, K)
    target = torch.from_numpy(np.asarray(y, dtype=np.int64))
    picked = stacked[:, torch.arange(len(target)), target]  # (M, N): each member's p(true class)
    logits = torch.zeros(m, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        w = torch.softmax(logits, 0)
        loss = -torch.log((w[:, None] * picked).sum(0).clamp_min(1e-12)).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return [float(v) for v in torch.softmax(logits.detach(), 0)]


def _storage_size(run_dir: Path) -> int:
    from picsift.models.artifact import read_meta
    from picsift.models.registry import DataConfig

    return DataConfig.from_dict(read_meta(run_dir)["data_config"]).storage_size


def make_ensemble(
    runs: list[Path],
    *,
    method: str = "mean",
    ws: Workspace | None = None,
    name: str | None = None,
) -> Path:
    """Combine finished runs into a new run folder of family "ensemble"; returns its path."""
    from picsift import __version__
    from picsift.deploy.predictor import Predictor
    from picsift.improve.rundata import run_workspace
    from picsift.train.runs import MetricsLog, environment, new_run, write_json

    if method not in ("mean", "weighted"):
        raise ConfigError(f"--method must be mean or weighted, got {method!r}")
    if len(runs) < 2:
        raise ConfigError(f"an ensemble needs at least 2 runs, got {len(runs)}")
    runs = [Path(r).resolve() for r in runs]
    metas = [read_json(r / ARTIFACT_DIR / META_FILE) for r in runs]
    classes = metas[0]["classes"]
    for r, meta in zip(runs, metas, strict=True):
        if meta["classes"] != classes:
            raise ConfigError(
                f"run {r.name} has classes {meta['classes']}, but {runs[0].name} has {classes}: "
                "ensemble members must share the same classes in the same order"
            )
    datas = [read_json(r / "data.json") for r in runs]
    same_val = all(sorted(d["val_ids"]) == sorted(datas[0]["val_ids"]) for d in datas)
    if method == "weighted" and not same_val:
        raise ConfigError(
            "weighted ensembles fit weights on validation images shared by all members, but these runs "
            "used different validation splits: train them with the same --seed, or use --method mean"
        )
    ws = run_workspace(runs[0], ws)
    # The ensemble's input is the largest member's storage size; members downsample as needed.
    largest = max(range(len(runs)), key=lambda i: _storage_size(runs[i]))
    data_config = dict(metas[largest]["data_config"])

    val = split_data(runs[largest], "val", ws)
    member_probs = []
    for r in runs:
        member = Predictor.from_run(r)
        member.temperature = None
        member_probs.append(member.predict_raw(_resize(val.x, _storage_size(r))))
    weights = fit_weights(member_probs, val.y) if method == "weighted" else [1.0 / len(runs)] * len(runs)
    mix = sum(w * p for w, p in zip(weights, member_probs, strict=True))
    val_acc = float((np.asarray(mix).argmax(1) == val.y).mean()) if len(val.y) else None
    member_accs = [float((p.argmax(1) == val.y).mean()) if len(val.y) else None for p in member_probs]

    with new_run(ws, "ensemble", name) as run_dir:
        out = run_dir / ARTIFACT_DIR
        members = []
        for i, (r, meta) in enumerate(zip(runs, metas, strict=True)):
            dest = out / MEMBERS_DIR / str(i)
            shutil.copytree(r / ARTIFACT_DIR, dest)
            members.append(
                {
                    "dir": f"{MEMBERS_DIR}/{i}",
                    "run_id": r.name,
                    "model": meta["model"],
                    "family": meta["family"],
                    "val_acc": member_accs[i],
                }
            )
        meta_out = {
            "picsift_version": __version__,
            "model": "ensemble",
            "family": "ensemble",
            "model_kwargs": {},
            "classes": classes,
            "data_config": data_config,
            "extra": {"method": method, "weights": weights, "members": members},
        }
        write_json(out / META_FILE, meta_out)
        write_json(run_dir / "config.json", {"ensemble": {"runs": [r.name for r in runs], "method": method}})
        write_json(
            run_dir / "env.json",
            {"seed": None, "catalog_hash": ws.catalog.catalog_hash(), "workspace": str(ws.root), **environment()},
        )
        shutil.copyfile(runs[largest] / "data.json", run_dir / "data.json")
        MetricsLog(run_dir / "metrics.jsonl")({"epoch": 1, "val_acc": val_acc, "member_val_acc": member_accs})
        summary = {
            "run_id": run_dir.name,
            "model": "ensemble",
            "family": "ensemble",
            "classes": classes,
            "members": [r.name for r in runs],
            "method": method,
            "weights": weights,
            "n_val": int(len(val.y)),
            "best_val_acc": val_acc,
            "member_val_acc": member_accs,
            "shared_val_split": same_val,
            "train_seconds": 0.0,
            "epochs": 0,
        }
        write_json(run_dir / "run.json", summary)
        ws.catalog.record_run(
            run_dir.name, str(run_dir), "ensemble", ws.catalog.catalog_hash(), {"best_val_acc": val_acc}
        )
    log.info("ensemble of %d runs (%s): val acc %s (members %s)", len(runs), method, val_acc, member_accs)
    return run_dir
