"""Test-time augmentation: average a model's probabilities over a few views of each image.

Views work on the uint8 (N, S, S, 3) arrays every predictor takes, so TTA applies to CNNs,
classical models and ensembles alike:

- `identity`
- `hflip`             mirror left-right (wrong for text, digits, some medical images: selection drops it)
- `shift:DX:DY`       translate by (DX, DY) pixels with reflection padding

Views are chosen per model on its validation images (`select_views`): starting from the identity,
a candidate view is kept when adding it improves validation accuracy (ties: lower NLL). The choice
is written to `tta.json` in the run folder ({"views": [...], "candidates": [...], "val": {...}});
`Predictor.enable_tta(run_dir)` reads it (and makes it on first use when the run's images are at hand).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from picsift.errors import ConfigError

log = logging.getLogger("picsift.improve")
TTA_FILE = "tta.json"
DEFAULT_VIEWS = ["identity", "hflip"]

PredictFn = Callable[[np.ndarray], np.ndarray]


def candidate_views(size: int) -> list[str]:
    """Flips and shifts of about 1/16 of the image side (2 px at 32 px, 14 px at 224 px)."""
    d = max(1, round(size / 16))
    return ["identity", "hflip", f"shift:{d}:0", f"shift:{-d}:0", f"shift:0:{d}", f"shift:0:{-d}"]


def apply_view(x: np.ndarray, view: str) -> np.ndarray:
    """uint8 (N, S, S, 3) -> the same images seen through `view`."""
    if view == "identity":
        return x
    if view == "hflip":
        return np.ascontiguousarray(x[:, :, ::-1])
    if view.startswith("shift:"):
        try:
            _, dx_s, dy_s = view.split(":")
            dx, dy = int(dx_s), int(dy_s)
        except ValueError as e:
            raise ConfigError(f"TTA view {view!r} must look like shift:DX:DY with integer pixels") from e
        p = max(abs(dx), abs(dy))
        if p == 0:
            return x
        s = x.shape[1]
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        # Content moves right by dx and down by dy.
        return np.ascontiguousarray(padded[:, p - dy : p - dy + s, p - dx : p - dx + s])
    raise ConfigError(f"unknown TTA view {view!r}: use identity, hflip or shift:DX:DY")


def predict_tta(predict: PredictFn, x: np.ndarray, views: list[str]) -> np.ndarray:
    """Mean of `predict` (uint8 (N,S,S,3) -> probabilities (N,K)) over the views."""
    if not views:
        raise ConfigError("TTA needs at least one view")
    total: np.ndarray | None = None
    for view in views:
        p = np.asarray(predict(apply_view(x, view)), dtype=np.float64)
        total = p if total is None else total + p
    assert total is not None  # views is non-empty
    return np.asarray(total / len(views), dtype=np.float32)


def _score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    acc = float((probs.argmax(1) == y).mean())
    nll = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1)).mean())
    return acc, -nll


def select_views(
    predict: PredictFn, x_val: np.ndarray, y_val: np.ndarray, candidates: list[str] | None = None
) -> dict[str, Any]:
    """Greedy forward selection of views on validation data; returns what goes into tta.json."""
    candidates = candidates or candidate_views(x_val.shape[1])
    per_view = {v: np.asarray(predict(apply_view(x_val, v)), dtype=np.float64) for v in candidates}
    chosen = ["identity"]
    total = per_view["identity"].copy()
    best = _score(total, y_val)
    single = best
    improved = True
    while improved:
        improved = False
        trials = []
        for v in candidates:
            if v in chosen:
                continue
            trials.append((_score((total + per_view[v]) / (len(chosen) + 1), y_val), v))
        if trials:
            score, v = max(trials)
            if score > best:
                chosen.append(v)
                total += per_view[v]
                best, improved = score, True
    return {
        "views": chosen,
        "candidates": candidates,
        "val": {
            "n": int(len(y_val)),
            "acc_single": single[0],
            "acc_tta": best[0],
            "nll_single": -single[1],
            "nll_tta": -best[1],
        },
    }


def choose_for_run(run_dir: Path, ws: Any = None) -> dict[str, Any]:
    """Select views on the run's validation images and write tta.json."""
    from picsift.deploy.predictor import Predictor
    from picsift.improve.rundata import split_data
    from picsift.train.runs import write_json

    predictor = Predictor.from_run(run_dir)
    predictor.temperature = None
    val = split_data(run_dir, "val", ws)
    if len(val.y) == 0:
        result = {"views": DEFAULT_VIEWS, "candidates": DEFAULT_VIEWS, "val": None}
    else:
        result = select_views(predictor.predict_arrays, val.x, val.y)
    write_json(Path(run_dir) / TTA_FILE, result)
    log.info("TTA views for %s: %s", Path(run_dir).name, result["views"])
    return result


def views_for_run(run_dir: Path) -> list[str]:
    """The run's chosen views; chosen now if tta.json is missing; the defaults if that is impossible."""
    path = Path(run_dir) / TTA_FILE
    if path.exists():
        return list(json.loads(path.read_text())["views"])
    from picsift.errors import PicsiftError

    try:
        return list(choose_for_run(Path(run_dir))["views"])
    except PicsiftError as e:
        log.warning("cannot choose TTA views for %s (%s); using %s", Path(run_dir).name, e, DEFAULT_VIEWS)
        return list(DEFAULT_VIEWS)
