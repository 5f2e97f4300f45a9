"""The one home of the small numerical functions every stage shares: softmax, log-probabilities, NLL, entropy.

All take numpy arrays of shape (N, K), one row per image and one column per class, and compute in float64.
Probabilities are clipped at `EPS` before a logarithm, so a hard zero gives a large finite number, not -inf.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12  # the smallest probability a logarithm sees


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, K) scores -> (N, K) float64 probabilities softmax(logits / temperature), rows summing to 1.

    The row maximum is subtracted first, so large logits never overflow.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(N, K) scores -> (N, K) float64 log-probabilities (logits minus their row log-sum-exp)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def log_probs(probs: np.ndarray) -> np.ndarray:
    """(N, K) probabilities -> (N, K) float64 log-probabilities, clipped at EPS so a hard zero stays finite."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the true classes: probs (N, K), y (N,) class indices.

    NaN for N = 0.
    """
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return float("nan")
    p = np.asarray(probs, dtype=np.float64)[np.arange(len(y)), y]
    return float(-np.log(np.clip(p, EPS, 1.0)).mean())


def entropy(probs: np.ndarray, normalised: bool = False) -> np.ndarray:
    """(N, K) probabilities -> (N,) Shannon entropy in nats; `normalised` divides by log K (range [0, 1])."""
    p = np.asarray(probs, dtype=np.float64)
    ent = -(p * np.log(np.clip(p, EPS, 1.0))).sum(axis=-1)
    if normalised:
        ent = ent / max(np.log(p.shape[-1]), EPS)
    return ent
