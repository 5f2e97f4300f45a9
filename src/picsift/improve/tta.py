"""Choosing a run's test-time views on its validation images (`picsift calibrate --tta`, `train --tta`).

The views themselves (identity, hflip, shift:DX:DY) and applying them are picsift.inference.tta. Selection
starts from the identity and greedily adds the candidate view that most improves validation accuracy (ties:
lower NLL), while one does. The choice goes into the run's inference spec (`tta_views`, with the selection's
report under fits["tta"]); `--tta` then averages the model's probabilities over exactly those views.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from picsift.improve.rundata import split_data
from picsift.inference import Predictor, ViewSet, apply_view, read_spec, write_spec
from picsift.inference.tta import DEFAULT_VIEW_SET, view_set
from picsift.numerics import nll
from picsift.runs import RunFolder
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")

PredictFn = Callable[[np.ndarray], np.ndarray]


def candidate_views(size: int) -> list[str]:
    """Flips and shifts of about 1/16 of the image side (2 px at 32 px, 14 px at 224 px)."""
    d = max(1, round(size / 16))
    return ["identity", "hflip", f"shift:{d}:0", f"shift:{-d}:0", f"shift:0:{d}", f"shift:0:{-d}"]


def _score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    acc = float((probs.argmax(1) == y).mean())
    return acc, -nll(probs, y)


def select_views(
    predict: PredictFn, x_val: np.ndarray, y_val: np.ndarray, candidates: list[str] | None = None
) -> dict[str, Any]:
    """Greedy forward selection of views on validation data: {"views": [...], "candidates": [...], "val": {...}}."""
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


def choose_for_run(run_dir: Path | RunFolder, ws: Workspace | None = None) -> dict[str, Any]:
    """Select views on the run's validation images and store them in its inference spec; returns the
    selection's report. Scored on the probabilities with the run's class scales but without its temperature
    (which never changes a decision). Without validation images: the default view set."""
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    predictor = Predictor.from_run(run)
    predictor = predictor.with_spec(predictor.spec.replace(temperature=None))
    val = split_data(run, "val", ws)
    if len(val.y) == 0:
        default = list(view_set(DEFAULT_VIEW_SET).views)
        result: dict[str, Any] = {"views": default, "candidates": default, "val": None}
    else:
        result = select_views(predictor.predict_arrays, val.x, val.y)
    write_spec(run, read_spec(run).replace(tta_views=tuple(result["views"])).with_fit("tta", result))
    log.info("TTA views for %s: %s", run.name, result["views"])
    return result


def views_for_fitting(run: RunFolder, ws: Workspace | None = None) -> ViewSet:
    """The run's chosen views, chosen (and stored) first when it has none: what `calibrate --tta` fits on."""
    spec = read_spec(run)
    views = spec.tta_views if spec.tta_views else tuple(choose_for_run(run, ws)["views"])
    return ViewSet.equal("chosen", views)
