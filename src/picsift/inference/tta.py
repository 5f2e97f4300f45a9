"""Test-time augmentation: a model's answers averaged over a few views of each image.

A view maps uint8 images (N, S, S, 3) to uint8 images of the same shape, so TTA applies to every runtime
(torch, scikit-learn, ONNX, ensembles) and to every caller alike:

- `identity`
- `hflip`           mirror left-right (wrong for text, digits, some medical images)
- `shift:DX:DY`     content moved right by DX and down by DY pixels, reflection padding
- `A+B`             view A, then view B (e.g. `shift:1:1+hflip`)

A `ViewSet` is views with weights, averaged over probabilities ("probs") or over logits ("logits"; for a
runtime that gives only probabilities, log-probabilities: the softmax of their weighted mean equals that of
the logits', since each view's log-sum-exp is a per-image constant). Named sets:

- `flip`          identity and mirror, equal weights, probabilities averaged: the default of `--tta`
- `flip-shift`    the fast CNN recipe's 6 views: the image and its mirror at weight 1/4 each, and both
                  shifted by one pixel up-left and down-right at 1/8 each, logits averaged (the CIFAR-10
                  benchmark's "with TTA" numbers)

A run's own choice (`picsift calibrate --tta`, `train --tta`: picsift.improve.tta) is stored in its
inference spec and used as an equal-weight set of probabilities ("chosen").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from picsift.errors import ConfigError
from picsift.numerics import log_probs, softmax
from picsift.suggest import did_you_mean

AVERAGES = ("probs", "logits")


def _apply_one(x: np.ndarray, view: str) -> np.ndarray:
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
    raise ConfigError(f"unknown TTA view {view!r}: use identity, hflip, shift:DX:DY or A+B")


def apply_view(x: np.ndarray, view: str) -> np.ndarray:
    """uint8 (N, S, S, 3) -> the same images seen through `view` (a copy unless the view is the identity)."""
    for part in view.split("+"):
        x = _apply_one(x, part)
    return x


@dataclass(frozen=True)
class ViewSet:
    """Views, their weights (summing to 1) and what is averaged: "probs" or "logits"."""

    name: str
    views: tuple[str, ...]
    weights: tuple[float, ...]
    average: str = "probs"

    @classmethod
    def equal(cls, name: str, views: list[str] | tuple[str, ...], average: str = "probs") -> ViewSet:
        """Equal weights over `views`; raises ConfigError for an empty list or an unknown view."""
        if not views:
            raise ConfigError("TTA needs at least one view")
        probe = np.zeros((1, 4, 4, 3), np.uint8)
        for v in views:
            apply_view(probe, v)  # an unknown view fails here, not mid-prediction
        if average not in AVERAGES:
            raise ConfigError(f"TTA average must be one of {', '.join(AVERAGES)}; got {average!r}")
        return cls(name, tuple(views), tuple([1.0 / len(views)] * len(views)), average)


# The fast recipe's views: its shifted pair is padded[:h, :w] (content down-right by one) and
# padded[2:, 2:] (up-left by one), each also mirrored.
FLIP_SHIFT = ViewSet(
    "flip-shift",
    ("identity", "hflip", "shift:1:1", "shift:1:1+hflip", "shift:-1:-1", "shift:-1:-1+hflip"),
    (0.25, 0.25, 0.125, 0.125, 0.125, 0.125),
    "logits",
)
VIEW_SETS = {"flip": ViewSet.equal("flip", ["identity", "hflip"]), "flip-shift": FLIP_SHIFT}
DEFAULT_VIEW_SET = "flip"


def view_set(name: str) -> ViewSet:
    """A named view set; ConfigError with a suggestion for an unknown name."""
    if name not in VIEW_SETS:
        did = did_you_mean(name, VIEW_SETS, n=1)
        raise ConfigError(f"unknown TTA view set {name!r}{did} (known: {', '.join(VIEW_SETS)})")
    return VIEW_SETS[name]


def average_logits(logits_of: Callable[[np.ndarray], np.ndarray], x: np.ndarray, views: ViewSet) -> np.ndarray:
    """Weighted mean over the views of `logits_of` (uint8 (N, S, S, 3) -> (N, K) logits): float64 (N, K).

    For a "probs" view set, the logarithm of the weighted mean of the views' softmax probabilities.
    """
    total: np.ndarray | None = None
    for view, w in zip(views.views, views.weights, strict=True):
        z = np.asarray(logits_of(apply_view(x, view)), dtype=np.float64)
        part = w * (z if views.average == "logits" else softmax(z))
        total = part if total is None else total + part
    if total is None:
        raise ConfigError("TTA needs at least one view")
    return total if views.average == "logits" else log_probs(total)


def average_probs(probs_of: Callable[[np.ndarray], np.ndarray], x: np.ndarray, views: ViewSet) -> np.ndarray:
    """Weighted mean over the views of `probs_of` (uint8 (N, S, S, 3) -> (N, K) probabilities): float64 (N, K)
    probabilities. A "logits" view set averages log-probabilities and renormalises (see the module doc)."""
    if views.average == "logits":
        return softmax(average_logits(lambda v: log_probs(probs_of(v)), x, views))
    total: np.ndarray | None = None
    for view, w in zip(views.views, views.weights, strict=True):
        part = w * np.asarray(probs_of(apply_view(x, view)), dtype=np.float64)
        total = part if total is None else total + part
    if total is None:
        raise ConfigError("TTA needs at least one view")
    return total
