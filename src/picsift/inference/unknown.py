"""Applying a fitted unknown-class rejector: say "unknown" for images unlike every training class.

Fitting happens in picsift.improve.unknown, which stores the rule (UnknownRule in the inference spec) and the
feature bank (an .npz beside it: `bank` (M, D) L2-normalised training features, `val_conf` and `val_knn` the
sorted validation scores). Two scores, both "higher = more like the training classes":

- confidence   the top-1 probability the Predictor reports (after class scales and temperature);
- knn          minus the distance from the image's L2-normalised features to its k-th nearest bank vector
               (Sun et al. 2022, "Out-of-distribution detection with deep nearest neighbors").

An image is rejected when either score falls below its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from picsift.errors import RunCorruptError, RunNotFoundError
from picsift.inference.spec import UnknownRule


def knn_score(feats: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """feats (N, D), bank (M, D), both L2-normalised -> (N,) minus the distance to the k-th nearest bank vector."""
    k = max(1, min(k, len(bank)))
    out = np.empty(len(feats), dtype=np.float32)
    b = torch.from_numpy(bank.astype(np.float32))
    for i in range(0, len(feats), 1024):
        q = torch.from_numpy(feats[i : i + 1024].astype(np.float32))
        d = torch.cdist(q, b)
        out[i : i + 1024] = -torch.topk(d, k, dim=1, largest=False).values[:, -1].numpy()
    return out


def ecdf(sorted_ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fraction of the (sorted) reference scores at or below each value: (N,) in [0, 1]."""
    return np.searchsorted(sorted_ref, values, side="right") / max(len(sorted_ref), 1)


@dataclass
class UnknownRejector:
    """A fitted rule with its bank: `scores` and `rejects` take features and the reported probabilities."""

    rule: UnknownRule
    bank: np.ndarray  # (M, D) float32
    val_conf: np.ndarray  # sorted validation confidences
    val_knn: np.ndarray  # sorted validation kNN scores

    @classmethod
    def load(cls, rule: UnknownRule, bank_path: Path) -> UnknownRejector:
        """The rule with the bank stored at `bank_path` (RunNotFoundError when missing, RunCorruptError when
        unreadable)."""
        if not bank_path.is_file():
            raise RunNotFoundError(
                f"unknown rejection's feature bank {bank_path} is missing: refit it with `picsift calibrate`"
            )
        try:
            with np.load(bank_path) as data:
                bank, val_conf, val_knn = data["bank"], data["val_conf"], data["val_knn"]
        except (OSError, ValueError, KeyError) as e:
            raise RunCorruptError(
                f"cannot read the feature bank {bank_path} ({e}): refit it with `picsift calibrate`"
            ) from e
        return cls(rule, bank.astype(np.float32), np.asarray(val_conf), np.asarray(val_knn))

    def scores(self, feats: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image scores (N,), higher = more known: confidence, knn and `combined` (min of ECDF ranks)."""
        conf = np.asarray(probs).max(axis=1)
        knn = knn_score(feats, self.bank, self.rule.k)
        combined = np.minimum(ecdf(self.val_conf, conf), ecdf(self.val_knn, knn))
        return {"confidence": conf, "knn": knn, "combined": combined}

    def rejects(self, feats: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Bool (N,): True where the image should be reported as "unknown"."""
        s = self.scores(feats, probs)
        return (s["confidence"] < self.rule.confidence_threshold) | (s["knn"] < self.rule.knn_threshold)
