"""Per-class decision thresholds fitted on a run's validation data -> `thresholds.json`.

On long-tailed data a model's argmax favours the frequent classes; moving the decision boundary
raises macro-F1 or balanced accuracy at a small cost in plain accuracy. `fit_class_scales`
(`fit_class_scales`) finds one multiplier s_k per class by coordinate ascent on the validation metric;
here the run's predictor applies them as a prior shift:

    p'_k = p_k * s_k / sum_j p_j * s_j

so the decision is argmax(p * s) and the output is still a probability distribution (top-k lists,
confidences, unknown rejection and the evaluation metrics all see the same adjusted numbers).
The scales act *before* temperature scaling: softmax(log(p') / T) has the argmax of p * s whatever
T is, so re-calibrating never changes a thresholded decision, and `picsift calibrate` fits T on
the adjusted probabilities. The scales are fitted on the probabilities the predictor would produce
without them (with TTA when asked), so they are independent of the temperature too.

Where they go: the run's inference spec (`class_scales`, with this fit's report under fits["thresholds"]),
applied by the Predictor to every prediction (predict, evaluate, compare) and copied by `picsift export` into
the bundle. The report:

    {
      "method": "class_scales",
      "metric": "macro_f1",                # or "balanced_accuracy": what the scales maximise
      "classes": ["cat", "dog", ...],      # the run's classes, in the order of "scales"
      "scales": [1.0, 2.38, ...],          # float > 0 per class; p'_k ~ p_k * scales[k]
      "fitted_on": "val", "n": 1000, "tta": false,
      "val":  {"before": 0.61, "after": 0.66, "accuracy_before": .., "accuracy_after": ..},
      "test": {... same keys ...}          # only when the run has test images (never used for fitting)
    }

`picsift calibrate --thresholds none` removes them (back to the plain argmax).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from picsift.errors import ConfigError, DatasetError
from picsift.improve.rundata import split_data
from picsift.improve.tta import views_for_fitting
from picsift.inference import Predictor, read_spec, write_spec
from picsift.inference.postprocess import apply_class_scales
from picsift.runs import RunFolder
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
__all__ = ["apply_class_scales", "fit_thresholds", "metric_name", "remove_thresholds"]
METRICS = {"macro-f1": "macro_f1", "balanced-accuracy": "balanced_accuracy"}


def score(y: np.ndarray, pred: np.ndarray, metric: str, num_classes: int) -> float:
    """`metric` (macro_f1, balanced_accuracy or accuracy) of predictions `pred` against `y`, both (N,) class
    indices; ConfigError for another metric."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if metric == "macro_f1":
        return float(f1_score(y, pred, average="macro", labels=list(range(num_classes)), zero_division=0))
    if metric == "balanced_accuracy":
        return float(balanced_accuracy_score(y, pred))
    if metric == "accuracy":
        return float((y == pred).mean())
    raise ConfigError(f"metric must be macro_f1, balanced_accuracy or accuracy; got {metric!r}")


def fit_class_scales(
    probs: np.ndarray, y: np.ndarray, metric: str = "macro_f1", rounds: int = 3, grid: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """Coordinate ascent on per-class multipliers: (scales (K,), metric before, metric after).

    Starts at 1 for every class (plain argmax) and only accepts changes that raise the metric on
    (probs, y), so the validation metric never gets worse.
    """
    if len(y) == 0:
        raise DatasetError("per-class thresholds need labelled validation images")
    k = probs.shape[1]
    grid = grid if grid is not None else np.exp(np.linspace(np.log(0.25), np.log(4.0), 17))
    scales = np.ones(k)
    before = best = score(y, probs.argmax(1), metric, k)
    for _ in range(rounds):
        changed = False
        for c in range(k):
            for g in grid:
                trial = scales.copy()
                trial[c] = g
                s = score(y, (probs * trial).argmax(1), metric, k)
                if s > best + 1e-12:
                    best, scales, changed = s, trial, True
        if not changed:
            break
    return scales, before, best


def metric_name(metric: str) -> str:
    """CLI spelling (macro-f1 | balanced-accuracy, or the underscore form) -> the score() name."""
    name = METRICS.get(metric, metric)
    if name not in METRICS.values():
        raise ConfigError(f"--thresholds must be one of {', '.join(METRICS)} or none; got {metric!r}")
    return name


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


MIN_VAL_PER_CLASS = 30  # validation images per class below which fitted scales are mostly noise


def threshold_warnings(result: dict[str, Any]) -> list[str]:
    """What a person should know before trusting fitted class scales (`fit_thresholds`'s result): too few
    validation images per class to fit one scale each, and a test split on which they do worse."""
    out = []
    per_class = result["n"] / max(1, len(result["classes"]))
    if per_class < MIN_VAL_PER_CLASS:
        out.append(
            f"the scales were fitted on {result['n']} validation images ({per_class:.0f} per class, under "
            f"{MIN_VAL_PER_CLASS}): they may fit noise"
        )
    test = result.get("test")
    if test and test["after"] < test["before"]:
        out.append(
            f"on the {test['n']} test images they lower {result['metric']} from {test['before']:.4f} to "
            f"{test['after']:.4f}: `picsift calibrate --thresholds none` removes them"
        )
    return out


def fit_thresholds(
    run_dir: Path | RunFolder, metric: str = "macro-f1", ws: Workspace | None = None, tta: bool = False
) -> dict[str, Any]:
    """Fit per-class scales on the run's validation images for `metric`; store them in the inference spec. The
    result's `warnings` say when there were too few validation images per class or the test split does worse."""
    name = metric_name(metric)
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    predictor = Predictor.from_run(run)
    if tta:
        predictor = predictor.with_views(views_for_fitting(run, ws))
    spec = read_spec(run)
    # The decision does not depend on T; refitting starts from the plain argmax.
    predictor = predictor.with_spec(spec.replace(temperature=None, class_scales=None))
    val = split_data(run, "val", ws)
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
    test = split_data(run, "test", ws)
    if len(test.y):
        result["test"] = _summary(predictor.predict_arrays(test.x), test.y, scales, name)
    result["warnings"] = threshold_warnings(result)
    write_spec(run, spec.replace(class_scales=tuple(result["scales"])).with_fit("thresholds", result))
    log.info("per-class scales for %s fitted on %d validation images: %.4f -> %.4f", name, len(val.y), before, after)
    return result


def remove_thresholds(run_dir: Path | RunFolder) -> bool:
    """Remove the run's per-class scales from its inference spec; True if it had some."""
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    spec = read_spec(run)
    if spec.class_scales is None:
        return False
    write_spec(run, spec.replace(class_scales=None).with_fit("thresholds", None))
    return True
