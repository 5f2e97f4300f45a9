"""Classification metrics as pure functions of plain arrays: labels (N,) and probabilities (N, K).

No torch, no catalog: the same function scores a CNN, a classical model, an ensemble or an exported
ONNX model, and tests can check it against hand-computed cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from picsift.errors import DatasetError
from picsift.evaluate.calibration import (
    display_bins,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_bins,
)
from picsift.numerics import nll

ECE_BINS = 15


def _check_inputs(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1:
        raise DatasetError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise DatasetError(f"probabilities must have shape (N, K) with N={y.shape[0]} labels, got {p.shape}")
    if p.shape[1] != len(classes):
        raise DatasetError(f"probabilities have {p.shape[1]} columns but {len(classes)} class names were given")
    if len(y) == 0:
        raise DatasetError("no images to evaluate (0 labels)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"labels must be integer class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= len(classes):
        raise DatasetError(f"labels must be class indices in [0, {len(classes) - 1}], got {y.min()}..{y.max()}")
    if not np.all(np.isfinite(p)):
        raise DatasetError("probabilities contain NaN or infinite values")
    return y.astype(np.int64), p


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (Wilson 1927; scipy.stats.binomtest): (low, high) in [0, 1].
    It stays inside [0, 1] and keeps its coverage for small n and proportions near 0 or 1. n = 0: (0, 1)."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def majority_baseline(y_true: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """What always answering the split's most common class would score: {"class", "accuracy"} (ties: the
    class listed first). No constant answer scores higher on this split."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=len(classes))
    top = int(counts.argmax())
    return {"class": str(classes[top]), "accuracy": float(counts[top] / max(1, counts.sum()))}


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the k most probable (ties: lower class index first)."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == y_true[:, None], axis=1)))


def compute_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    top_k: Sequence[int] = (1, 5),
    n_bins: int = ECE_BINS,
) -> dict[str, Any]:
    """Score predictions. y_true: (N,) int class indices; probs: (N, K) rows of class probabilities.

    Returns a JSON-ready dict: accuracy; top_k_accuracy for each k <= K (as {"1": ..., "5": ...});
    per_class precision/recall/f1/support keyed by class name; macro_avg and weighted_avg; the
    confusion matrix (rows: true class, columns: predicted class) and its largest off-diagonal cells
    (top_confusions); ECE/MCE with the reliability bins (plus `reliability_display`, fewer bins from 1/K, for
    the diagram); accuracy_ci95 (Wilson), the majority-class baseline and the number of mistakes; negative
    log-likelihood and multi-class Brier score (both lower is better).
    """
    y, p = _check_inputs(y_true, probs, classes)
    n, k_classes = p.shape
    labels = list(range(k_classes))
    pred = p.argmax(axis=1)
    confidence = p.max(axis=1)
    correct = pred == y

    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    per_class = {
        str(c): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }

    # Averages run over the classes that occur (as truth or prediction), sklearn's default: a class
    # absent from a small test split would otherwise drag the macro average down with a made-up 0.
    present = sorted(set(y.tolist()) | set(pred.tolist()))

    def average(kind: str) -> dict[str, float | int]:
        ap, ar, af, _ = precision_recall_fscore_support(y, pred, labels=present, average=kind, zero_division=0)
        return {"precision": float(ap), "recall": float(ar), "f1": float(af), "support": int(n)}

    cm = confusion_matrix(y, pred, labels=labels)
    bins = reliability_bins(confidence, correct, n_bins)
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    return {
        "n": int(n),
        "num_classes": int(k_classes),
        "classes": [str(c) for c in classes],
        "accuracy": float(correct.mean()),
        "accuracy_ci95": list(wilson_interval(int(correct.sum()), int(n))),
        "majority_baseline": majority_baseline(y, classes),
        "mistakes": int((~correct).sum()),
        "top_k_accuracy": {str(k): top_k_accuracy(y, p, k) for k in sorted(set(top_k)) if 1 <= k <= k_classes},
        "per_class": per_class,
        "macro_avg": average("macro"),
        "weighted_avg": average("weighted"),
        "confusion_matrix": cm.tolist(),
        "top_confusions": top_confusions(cm, classes),
        "mean_confidence": float(confidence.mean()),
        "ece": expected_calibration_error(bins),
        "mce": maximum_calibration_error(bins),
        "ece_bins": int(n_bins),
        "reliability": [b.to_dict() for b in bins],
        "reliability_display": [b.to_dict() for b in display_bins(confidence, correct, k_classes, n_bins)],
        "nll": nll(p, y),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
    }


def top_confusions(cm: np.ndarray, classes: Sequence[str], limit: int = 10) -> list[dict[str, Any]]:
    """The most frequent (true, predicted) mistakes from a confusion matrix, largest count first."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows = cm.sum(axis=1)
    flat = np.argsort(-off, axis=None, kind="stable")[:limit]
    out = []
    for t, p in zip(*np.unravel_index(flat, off.shape), strict=True):
        if off[t, p] == 0:
            break
        out.append(
            {
                "true": str(classes[t]),
                "predicted": str(classes[p]),
                "count": int(off[t, p]),
                "fraction_of_true": float(off[t, p] / rows[t]),
            }
        )
    return out


def most_confident_mistakes(y_true: np.ndarray, probs: np.ndarray, limit: int = 24) -> np.ndarray:
    """Indices of wrong predictions, most confident first (at most `limit`)."""
    y = np.asarray(y_true)
    p = np.asarray(probs)
    pred = p.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    order = np.argsort(-p[wrong, pred[wrong]], kind="stable")
    return wrong[order][:limit]
