"""Predicting with an ensemble: the weighted mean of its members' probabilities.

An ensemble artifact (made by picsift.improve.ensemble) lists its members in model.json
(`extra.members[i].dir`, `extra.weights`); each member is a full artifact of any family. Each member sees the
input resized to its own storage size, so members trained at different resolutions combine.
"""

from __future__ import annotations

import numpy as np
import torch

from picsift.inference.postprocess import Scores
from picsift.inference.runtime import Runtime, probability_features
from picsift.models.registry import DataConfig


def resize_uint8(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, S, S, 3) -> uint8 (N, size, size, 3), bilinear with antialiasing; unchanged when S = size."""
    if x.shape[1] == size:
        return x
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class EnsembleRuntime:
    """Members' runtimes and their convex weights; gives probabilities."""

    name = "ensemble"

    def __init__(self, members: list[Runtime], weights: list[float], classes: list[str], dc: DataConfig) -> None:
        self.members = members
        self.weights = [float(w) for w in weights]
        self.classes = list(classes)
        self.data_config = dc

    def scores(self, x: np.ndarray, batch_size: int = 256) -> Scores:
        """uint8 (N, S, S, 3) -> weighted mean of the members' probabilities (N, K)."""
        total = np.zeros((len(x), len(self.classes)), dtype=np.float64)
        for member, w in zip(self.members, self.weights, strict=True):
            xm = resize_uint8(x, member.data_config.storage_size)
            total += w * member.scores(xm, batch_size).probs()
        return Scores(total.astype(np.float32), logits=False)

    def features(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """(sqrt of the ensemble's probabilities (N, K) as stand-in features, None)."""
        return probability_features(self.scores(x, batch_size).probs()), None
