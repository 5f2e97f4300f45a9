"""Calibration: expected calibration error and the bin data behind a reliability diagram.

A classifier is calibrated when, among the images it predicts with confidence ~p, a fraction ~p is
right. Binning the top-1 confidence into equal-width bins (15, as in Guo et al. 2017, "On Calibration
of Modern Neural Networks") and comparing each bin's accuracy with its mean confidence gives both the
diagram and its one-number summary, ECE = sum_b |B_b|/N * |acc(B_b) - conf(B_b)|.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin (lower, upper]; the first bin also holds confidence exactly 0."""

    lower: float
    upper: float
    count: int
    accuracy: float | None  # None for an empty bin
    confidence: float | None  # mean top-1 confidence of the bin's images

    @property
    def gap(self) -> float | None:
        """Mean confidence minus accuracy (positive: over-confident), or None for an empty bin."""
        if self.accuracy is None or self.confidence is None:
            return None
        return self.confidence - self.accuracy

    def to_dict(self) -> dict[str, Any]:
        """The bin as JSON-ready data, with its gap."""
        return {**asdict(self), "gap": self.gap}


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, lower: float = 0.0
) -> list[ReliabilityBin]:
    """confidence: (N,) top-1 probabilities in [0, 1]; correct: (N,) bool -> `n_bins` equal-width bins over
    [lower, 1] (values below `lower` fall into the first bin)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(lower, 1.0, n_bins + 1)
    # Right-closed bins: index b holds (edges[b], edges[b+1]]; clip puts exact 0 into the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = index == b
        n = int(mask.sum())
        out.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=n,
                accuracy=float(correct[mask].mean()) if n else None,
                confidence=float(confidence[mask].mean()) if n else None,
            )
        )
    return out


def expected_calibration_error(bins: list[ReliabilityBin]) -> float:
    """Count-weighted mean |accuracy - confidence| over the bins (0 = perfectly calibrated)."""
    total = sum(b.count for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b.count * abs(b.gap) for b in bins if b.gap is not None) / total)


def maximum_calibration_error(bins: list[ReliabilityBin]) -> float:
    """The worst bin's |accuracy - confidence|."""
    gaps = [abs(b.gap) for b in bins if b.gap is not None]
    return float(max(gaps)) if gaps else float("nan")


DISPLAY_IMAGES_PER_BIN = 25


def display_bins(
    confidence: np.ndarray, correct: np.ndarray, n_classes: int, max_bins: int = 15
) -> list[ReliabilityBin]:
    """Bins for drawing a reliability diagram: from 1/K (a top-1 confidence is never lower) to 1, with about
    DISPLAY_IMAGES_PER_BIN images per bin on average (3 bins at least, `max_bins` at most), so a small split
    is not spread over 15 mostly empty bins. ECE keeps its own fixed bins over [0, 1]."""
    n = len(np.asarray(confidence))
    bins = int(np.clip(round(n / DISPLAY_IMAGES_PER_BIN), 3, max(3, max_bins)))
    return reliability_bins(confidence, correct, bins, lower=1.0 / max(1, n_classes))
