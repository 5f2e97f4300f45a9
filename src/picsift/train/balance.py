"""Class imbalance in training: class weights or a balanced sampler from class counts, or oversampled arrays.

`--balance` modes (TrainConfig.balance):
- `none`     plain training
- `weights`  cross-entropy weighted by inverse class frequency (normalised so the mean weight over
             the training images is 1, so the learning rate means the same thing)
- `sampler`  a WeightedRandomSampler drawing each class equally often (with replacement)
- `auto`     from the imbalance ratio r = largest / smallest class count: r < 1.5 -> none (weighting a
             nearly balanced set only adds noise); r <= 20 -> weights (every image is still seen every
             epoch); r > 20 -> sampler (inverse-frequency weights that large make the loss scale, and
             so the effective step size, swing from batch to batch, whereas re-sampling keeps batches
             balanced with ordinary losses)

Where it happens: the standard loop (train/loop.py) calls `plan` and uses the sampler or the class
weights; classical models set scikit-learn's class_weight="balanced" themselves; the fast CNN
recipe draws its own batches, so the pipeline hands it `oversample`d arrays (minority images
repeated up to the largest class) for any mode other than none.

Per-class decision thresholds, which adjust a trained model's decisions rather than its training, live in
`picsift.improve.thresholds`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from picsift.errors import ConfigError

log = logging.getLogger("picsift.improve")
MODES = ("none", "auto", "weights", "sampler")


@dataclass(frozen=True)
class BalancePlan:
    """How class imbalance is handled: the mode asked for, the strategy used, images per class and the
    largest/smallest class ratio."""

    mode: str  # what was asked for
    strategy: str  # what is done: none | weights | sampler
    counts: list[int]
    ratio: float
    class_weights: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, as a dict."""
        return asdict(self)


def class_counts(y: np.ndarray, num_classes: int) -> np.ndarray:
    """y: (N,) class indices -> (num_classes,) int64 images per class."""
    return np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)


def choose_strategy(counts: np.ndarray, mode: str) -> str:
    """The strategy for `mode`; "auto": none below a 1.5 largest/smallest ratio, weights up to 20, else the
    sampler. ConfigError for an unknown mode."""
    if mode not in MODES:
        raise ConfigError(f"--balance must be one of {', '.join(MODES)}; got {mode!r}")
    if mode != "auto":
        return mode
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    if ratio < 1.5:
        return "none"
    return "weights" if ratio <= 20 else "sampler"


def inverse_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """(K,) weights ~ 1/count, scaled so that the mean weight over the training images is 1."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return w * counts.sum() / max((w * counts).sum(), 1e-12)


def balanced_sampler(
    y: np.ndarray, num_classes: int, generator: torch.Generator | None = None, num_samples: int | None = None
) -> torch.utils.data.WeightedRandomSampler:
    """Draws every class equally often on average; an epoch has as many draws as there are images."""
    counts = class_counts(y, num_classes)
    per_image = 1.0 / counts[np.asarray(y, dtype=np.int64)]
    return torch.utils.data.WeightedRandomSampler(
        torch.as_tensor(per_image, dtype=torch.double),  # type: ignore[arg-type]
        num_samples or len(y),
        replacement=True,
        generator=generator,
    )


def plan(
    y: np.ndarray,
    mode: str,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.utils.data.Sampler | None, torch.Tensor | None, BalancePlan]:
    """(sampler or None, class weights or None, what was decided) for the training labels `y`."""
    counts = class_counts(y, num_classes)
    if (counts == 0).any() and mode != "none":
        log.warning("classes without training images: %s", np.flatnonzero(counts == 0).tolist())
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    strategy = choose_strategy(counts, mode)
    sampler, weights = None, None
    if strategy == "sampler":
        sampler = balanced_sampler(y, num_classes, generator)
    elif strategy == "weights":
        weights = torch.as_tensor(inverse_frequency_weights(counts), dtype=torch.float32)
    decided = BalancePlan(mode, strategy, counts.tolist(), ratio, weights.tolist() if weights is not None else None)
    log.info("balance %s: imbalance ratio %.1f -> %s", mode, ratio, strategy)
    return sampler, weights, decided


def oversample(data: Any, mode: str, seed: int) -> Any:
    """A TrainData whose minority classes are repeated (seeded) up to the largest class's count.

    The data-level equivalent of the balanced sampler, for trainers that take neither a sampler nor
    class weights (the fast CNN recipe draws its own batches): every original image stays in, the
    rarer classes' images appear several times per epoch. Returns `data` unchanged when `mode`
    decides on "none".
    """
    import dataclasses

    k = len(data.classes)
    counts = class_counts(data.y_train, k)
    if choose_strategy(counts, mode) == "none":
        return data
    rng = np.random.default_rng(seed)
    target = int(counts.max())
    index = []
    for c in range(k):
        members = np.flatnonzero(data.y_train == c)
        if len(members) == 0:
            continue
        n_extra = max(0, target - len(members))
        extra = rng.choice(members, size=n_extra, replace=True) if n_extra else np.empty(0, np.int64)
        index.append(np.concatenate([members, extra.astype(np.int64)]))
    order = np.sort(np.concatenate(index))
    log.info(
        "balance %s: oversampled %d training images to %d (%d per class)", mode, len(data.y_train), len(order), target
    )
    ids = [data.train_ids[i] for i in order] if data.train_ids else []
    return dataclasses.replace(data, x_train=data.x_train[order], y_train=data.y_train[order], train_ids=ids)
