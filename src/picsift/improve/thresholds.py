"""Per-class decision thresholds fitted on a run's validation data -> `thresholds.json`.

On long-tailed data a model's argmax favours the frequent classes; moving the decision boundary
raises macro-F1 or balanced accuracy at a small cost in plain accuracy. `fit_class_scales`
(improve.balance) finds one multiplier s_k per class by coordinate ascent on the validation metric;
here the run's predictor applies them as a prior shift:

    p'_k = p_k * s_k / sum_j p_j * s_j

so the decision is argmax(p * s) and the output is still a probability distribution (top-k lists,
confidences, unknown rejection and the evaluation metrics all see the same adjusted numbers).
The scales act *before* temperature scaling: softmax(log(p') / T) has the argmax of p * s whatever
T is, so re-calibrating never changes a thresholded decision, and `picsift calibrate` fits T on
the adjusted probabilities. The scales are fitted on the probabilities the predictor would produce
without them (with TTA when asked), so they are independent of the temperature too.

File format: `thresholds.json` in the run folder, read by `Predictor.from_run` (which applies it to
every prediction: predict, evaluate, compare) and copied by `picsift export` into bundle.json as
`class_scales` (so serving applies the same shift after its softmax):

    {
      "method": "class_scales",
      "metric": "macro_f1",                # or "balanced_accuracy": what the scales maximise
      "classes": ["cat", "dog", ...],      # the run's classes, in the order of "scales"
      "scales": [1.0, 2.38, ...],          # float > 0 per class; p'_k ~ p_k * scales[k]
      "fitted_on": "val", "n": 1000, "tta": false,
      "val":  {"before": 0.61, "after": 0.66, "accuracy_before": .., "accuracy_after": ..},
      "test": {... same keys ...}          # only when the run has test images (never used for fitting)
    }

Remove the file (or `picsift calibrate --thresholds none`) to go back to the plain argmax.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from picsift.errors import ConfigError, RunNotFoundError
from picsift.improve.balance import fit_class_scales, score
from picsift.improve.rundata import split_data
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
THRESHOLDS_FILE = "thresholds.json"
METRICS = {"macro-f1": "macro_f1", "balanced-accuracy": "balanced_accuracy"}


def metric_name(metric: str) -> str:
    """CLI spelling (macro-f1 | balanced-accuracy, or the underscore form) -> the score() name."""
    name = METRICS.get(metric, metric)
    if name not in METRICS.values():
        raise ConfigError(f"--thresholds must be one of {', '.join(METRICS)} or none; got {metric!r}")
    return name


def apply_class_scales(probs: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """(N, K) probabilities -> (N, K) probabilities proportional to p * scales (renormalised)."""
    if scales is None or len(probs) == 0:
        return np.asarray(probs, dtype=np.float32)
    shifted = np.asarray(probs, dtype=np.float64) * np.asarray(scales, dtype=np.float64)[None, :]
    return (shifted / np.clip(shifted.sum(axis=1, keepdims=True), 1e-300, None)).astype(np.float32)


def read_class_scales(run_dir: Path) -> np.ndarray | None:
    """The run's fitted per-class scales (K,), or None when it has no thresholds.json."""
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.exists():
        return None
    try:
        scales = np.asarray(json.loads(path.read_text())["scales"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunNotFoundError(f"{path} is not a valid thresholds file ({e}); refit it with `picsift calibrate`") from e
    if scales.ndim != 1 or not np.all(scales > 0):
        raise RunNotFoundError(f"{path}: scales must be a list of positive numbers; refit with `picsift calibrate`")
    return scales


def _summary(probs: np.ndarray, y: np.ndarray, scales: np.ndarray, metric: str) -> dict[str, float]:
    k = probs.shape[1]
    before, after = probs.argmax(1), (probs * scales).argmax(1)
    return {
        "n": int(len(y)),
        "before": score(y, before, metric, k),
        "after": score(y, after, metric, k),
        "accuracy_before": float((before == y).mean()),
        "accuracy_after": float((after == y).mean()),
    }


def fit_thresholds(
    run_dir: Path, metric: str = "macro-f1", ws: Workspace | None = None, tta: bool = False
) -> dict[str, Any]:
    """Fit per-class scales on the run's validation images for `metric`; write thresholds.json."""
    from picsift.deploy.predictor import Predictor
    from picsift.train.runs import write_json

    name = metric_name(metric)
    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir)
    predictor.temperature = None  # the decision does not depend on T; fit on the plain probabilities
    predictor.class_scales = None  # refitting starts from the plain argmax
    if tta:
        predictor.enable_tta(run_dir)
    val = split_data(run_dir, "val", ws)
    probs = predictor.predict_arrays(val.x)
    scales, before, after = fit_class_scales(probs, val.y, name)
    result: dict[str, Any] = {
        "method": "class_scales",
        "metric": name,
        "classes": list(predictor.classes),
        "scales": [float(s) for s in scales],
        "fitted_on": "val",
        "n": int(len(val.y)),
        "tta": bool(tta),
        "val": _summary(probs, val.y, scales, name),
    }
    test = split_data(run_dir, "test", ws)
    if len(test.y):
        result["test"] = _summary(predictor.predict_arrays(test.x), test.y, scales, name)
    write_json(run_dir / THRESHOLDS_FILE, result)
    log.info("per-class scales for %s fitted on %d validation images: %.4f -> %.4f", name, len(val.y), before, after)
    return result


def remove_thresholds(run_dir: Path) -> bool:
    """Delete the run's thresholds.json; True if there was one."""
    path = Path(run_dir) / THRESHOLDS_FILE
    if path.exists():
        path.unlink()
        return True
    return False


def bundle_class_scales(run_dir: Path) -> list[float] | None:
    """The scales as bundle.json carries them (`class_scales`), or None when the run has none."""
    scales = read_class_scales(run_dir)
    return None if scales is None else [float(s) for s in scales]
