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
from picsift.improve.rundata import split_data
from picsift.inference import Predictor
from picsift.inference.ensemble import resize_uint8
from picsift.models.artifact import read_meta, save_artifact
from picsift.models.registry import DataConfig
from picsift.runs import RunFolder, environment, new_run, run_workspace
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
MEMBERS_DIR = "members"


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
    return DataConfig.from_dict(read_meta(run_dir)["data_config"]).storage_size


def make_ensemble(
    runs: list[Path],
    *,
    method: str = "mean",
    ws: Workspace | None = None,
    name: str | None = None,
) -> Path:
    """Combine finished runs into a new run folder of family "ensemble"; returns its path."""
    if method not in ("mean", "weighted"):
        raise ConfigError(f"--method must be mean or weighted, got {method!r}")
    if len(runs) < 2:
        raise ConfigError(f"an ensemble needs at least 2 runs, got {len(runs)}")
    runs = [Path(r).resolve() for r in runs]
    metas = [read_meta(r) for r in runs]
    classes = metas[0]["classes"]
    for r, meta in zip(runs, metas, strict=True):
        if meta["classes"] != classes:
            raise ConfigError(
                f"run {r.name} has classes {meta['classes']}, but {runs[0].name} has {classes}: "
                "ensemble members must share the same classes in the same order"
            )
    datas = [RunFolder(r).read_data_split() for r in runs]
    same_val = all(sorted(d["val_ids"]) == sorted(datas[0]["val_ids"]) for d in datas)
    if method == "weighted" and not same_val:
        raise ConfigError(
            "weighted ensembles fit weights on validation images shared by all members, but these runs "
            "used different validation splits: train them with the same --seed, or use --method mean"
        )
    ws = run_workspace(RunFolder(runs[0]), ws)
    # The ensemble's input is the largest member's storage size; members downsample as needed. A smaller member
    # then sees a resized copy, not its own decode of the original (small originals get upscaled, then shrunk:
    # a 32 px fast CNN agreed with its own predictions on 94% of CIFAR-10 images), so the run names such members.
    largest = max(range(len(runs)), key=lambda i: _storage_size(runs[i]))
    data_config = DataConfig.from_dict(metas[largest]["data_config"])

    val = split_data(runs[largest], "val", ws)
    # The members' own probabilities: their temperatures and class scales stay out of the mixture.
    member_probs = [Predictor.from_run(r).predict_raw(resize_uint8(val.x, _storage_size(r))) for r in runs]
    weights = fit_weights(member_probs, val.y) if method == "weighted" else [1.0 / len(runs)] * len(runs)
    mix = sum(w * p for w, p in zip(weights, member_probs, strict=True))
    val_acc = float((np.asarray(mix).argmax(1) == val.y).mean()) if len(val.y) else None
    member_accs = [float((p.argmax(1) == val.y).mean()) if len(val.y) else None for p in member_probs]

    def copy_members(_: Any, out: Path) -> dict[str, Any]:
        for i, r in enumerate(runs):
            shutil.copytree(RunFolder(r).artifact_dir, out / MEMBERS_DIR / str(i))
        return {}

    members = [
        {
            "dir": f"{MEMBERS_DIR}/{i}",
            "run_id": r.name,
            "model": meta["model"],
            "family": meta["family"],
            "val_acc": member_accs[i],
        }
        for i, (r, meta) in enumerate(zip(runs, metas, strict=True))
    ]
    with new_run(ws, "ensemble", name) as run:
        save_artifact(
            run.path,
            model=None,
            model_name="ensemble",
            family="ensemble",
            classes=classes,
            data_config=data_config,
            extra={"method": method, "weights": weights, "members": members},
            write_model=copy_members,
        )
        run.write_config({"ensemble": {"runs": [r.name for r in runs], "method": method}})
        run.write_env(
            {"seed": None, "catalog_hash": ws.catalog.catalog_hash(), "workspace": str(ws.root), **environment()}
        )
        run.write_data_split(datas[largest])
        run.history_log()({"epoch": 1, "val_acc": val_acc, "member_val_acc": member_accs})
        summary = {
            "run_id": run.name,
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
            "input_size": data_config.storage_size,
            "resized_members": [r.name for r in runs if _storage_size(r) < data_config.storage_size],
            "train_seconds": 0.0,
            "epochs": 0,
        }
        run.write_record(summary)
        ws.catalog.record_run(run.name, str(run.path), "ensemble", ws.catalog.catalog_hash(), {"best_val_acc": val_acc})
    log.info("ensemble of %d runs (%s): val acc %s (members %s)", len(runs), method, val_acc, member_accs)
    return run.path
