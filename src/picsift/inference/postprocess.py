"""What a Predictor does to a model's scores after the forward pass: class scales, then the temperature.

Scores are logits, or probabilities for runtimes that give only those (scikit-learn, ensembles); both are
(N, K) with one column per class. With per-class scales s (picsift.improve.thresholds) and a temperature T
(picsift.improve.calibration):

    p = softmax((z + log s) / T)        z: the logits, or log p for probabilities

that is p' ~ p * s first, so the decision argmax(p * s) does not depend on T, then p = softmax(log p' / T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from picsift.numerics import log_probs, softmax


@dataclass(frozen=True)
class Scores:
    """(N, K) float values: logits when `logits` is True, else probabilities."""

    values: np.ndarray
    logits: bool

    def probs(self) -> np.ndarray:
        """(N, K) float64 probabilities (the logits' softmax; probabilities as they are)."""
        return softmax(self.values) if self.logits else np.asarray(self.values, dtype=np.float64)

    def log(self) -> np.ndarray:
        """(N, K) float64 log-scores: the logits, or the log-probabilities clipped at numerics.EPS."""
        return np.asarray(self.values, dtype=np.float64) if self.logits else log_probs(self.values)


def apply_class_scales(probs: np.ndarray, scales: np.ndarray | tuple[float, ...] | None) -> np.ndarray:
    """(N, K) probabilities -> (N, K) float32 probabilities proportional to p * scales (renormalised)."""
    if scales is None or len(probs) == 0:
        return np.asarray(probs, dtype=np.float32)
    shifted = np.asarray(probs, dtype=np.float64) * np.asarray(scales, dtype=np.float64)[None, :]
    return (shifted / np.clip(shifted.sum(axis=1, keepdims=True), 1e-300, None)).astype(np.float32)


def apply_temperature(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """(N, K) probabilities -> (N, K) float32 probabilities softened (T > 1) or sharpened (T < 1)."""
    if temperature is None or temperature == 1.0 or len(probs) == 0:
        return np.asarray(probs, dtype=np.float32)
    return softmax(log_probs(probs), temperature).astype(np.float32)


def finish(scores: Scores, class_scales: tuple[float, ...] | None, temperature: float | None) -> np.ndarray:
    """Scores (N, K) -> float32 probabilities (N, K) with the class scales, then the temperature, applied."""
    if len(scores.values) == 0:
        return np.zeros(np.shape(scores.values), dtype=np.float32)
    if class_scales is None and (temperature is None or temperature == 1.0):
        return scores.probs().astype(np.float32)
    z = scores.log()
    if class_scales is not None:
        z = z + np.log(np.asarray(class_scales, dtype=np.float64))[None, :]
    return softmax(z, temperature or 1.0).astype(np.float32)
