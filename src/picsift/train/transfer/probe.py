"""The linear head in seconds: standardised embeddings + multinomial logistic regression (scikit-learn), folded
into the model's `nn.Linear` classifier so that the saved model is a plain torch model.

Standardising, then a linear map, is itself linear: with z = (f - mu) / sd, logits = W z + b = (W / sd) f +
(b - (W / sd) mu). Folding gives the classifier weight W / sd and bias b - (W / sd) mu, bit for bit the
probe's decision, and fine-tuning starts from it (LP-FT: Kumar et al., "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution", ICLR 2022: a fitted head before fine-tuning keeps the early
gradients from wrecking the pretrained features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from picsift.train.transfer.recipe import DEFAULT_C, PROBE_CS

SEARCH_IMAGES = 1500  # the C grid is searched on at most this many training images; the chosen C refits on all


@dataclass
class Probe:
    """A fitted linear head on raw embeddings: logits = features @ weight.T + bias.

    weight: float32 (K, D); bias: float32 (K,); c: the regularisation used; val_acc / val_nll: on the validation
    embeddings (None without any); grid: validation log-loss per C tried (empty when C was fixed).
    """

    weight: np.ndarray
    bias: np.ndarray
    c: float
    train_acc: float
    val_acc: float | None
    val_nll: float | None
    grid: dict[str, float]

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Raw (unstandardised) float (N, D) embeddings -> (N, K) logits; softmax gives the probe's
        probabilities. Raises ValueError (numpy) when D differs from the probe's."""
        return features @ self.weight.T + self.bias

    def to_dict(self) -> dict[str, Any]:
        """{C, train_acc, val_acc, val_nll, val_nll_by_C} as plain JSON values (accuracies in [0, 1], log-loss in
        nats per image), as recorded in run.json under phases.probe."""
        return {
            "C": self.c,
            "train_acc": self.train_acc,
            "val_acc": self.val_acc,
            "val_nll": self.val_nll,
            "val_nll_by_C": self.grid,
        }


def _fit(f: np.ndarray, y: np.ndarray, num_classes: int, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of softmax logits on raw features f (N, D): the standardisation folded in."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(f)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(scaler.transform(f), y)
    coef = np.zeros((num_classes, f.shape[1]))
    intercept = np.zeros(num_classes)
    if coef.shape[0] == 2 and clf.coef_.shape[0] == 1:  # binary: one logit w.x + b = logit(p1) - logit(p0)
        coef[0], coef[1] = -clf.coef_[0] / 2, clf.coef_[0] / 2
        intercept[0], intercept[1] = -clf.intercept_[0] / 2, clf.intercept_[0] / 2
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
        missing = np.setdiff1d(np.arange(num_classes), clf.classes_)
        intercept[missing] = -1e4  # a class without training images is never predicted (cannot happen in a run)
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    weight = coef / scale
    bias = intercept - weight @ np.asarray(scaler.mean_, dtype=np.float64)
    return weight.astype(np.float32), bias.astype(np.float32)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _scores(weight: np.ndarray, bias: np.ndarray, f: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean negative log-likelihood) of the head on (f, y)."""
    logp = _log_softmax((f @ weight.T + bias).astype(np.float64))
    return float((logp.argmax(1) == y).mean()), float(-logp[np.arange(len(y)), y].mean())


def fit_probe(
    f_train: np.ndarray,
    y_train: np.ndarray,
    f_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    c: float | None = None,
    seed: int = 0,
) -> Probe:
    """Fit the head on (f_train (N, D), y_train (N,)); with c None, C is the one of PROBE_CS with the lowest
    validation log-loss (searched on at most SEARCH_IMAGES stratified training images), DEFAULT_C without
    validation images. f_val (M, D), y_val (M,) may be empty; labels are ints in [0, num_classes). C is the inverse
    L2 strength of scikit-learn's LogisticRegression (L-BFGS, multinomial) on standardised features; the
    standardisation is folded into the returned weights (module docstring). Raises ValueError (scikit-learn) for
    training labels of a single class."""
    grid: dict[str, float] = {}
    if c is None and len(y_val):
        sub = _stratified_subset(y_train, SEARCH_IMAGES, seed)
        for candidate in PROBE_CS:
            w, b = _fit(f_train[sub], y_train[sub], num_classes, candidate, seed)
            grid[str(candidate)] = _scores(w, b, f_val, y_val)[1]
        c = float(min(PROBE_CS, key=lambda k: grid[str(k)]))
    chosen = DEFAULT_C if c is None else c
    weight, bias = _fit(f_train, y_train, num_classes, chosen, seed)
    train_acc = _scores(weight, bias, f_train, y_train)[0]
    val_acc, val_nll = _scores(weight, bias, f_val, y_val) if len(y_val) else (None, None)
    return Probe(weight, bias, chosen, train_acc, val_acc, val_nll, grid)


def _stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(y) <= n:
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


def fold_into(classifier: nn.Linear, probe: Probe) -> None:
    """Copy the probe's head into `classifier` (out_features K, in_features D), in place, so the model's logits
    equal `probe.logits` of its pooled features. Raises ValueError when the classifier's weight is not (K, D)."""
    if tuple(classifier.weight.shape) != probe.weight.shape:
        raise ValueError(f"classifier {tuple(classifier.weight.shape)} does not fit the probe {probe.weight.shape}")
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(probe.weight))
        if classifier.bias is not None:
            classifier.bias.copy_(torch.from_numpy(probe.bias))
