"""Fitting unknown-class rejection: say "unknown" instead of a confident wrong class for images unlike any class.

Two scores, both "higher = more like the training classes" (applied by picsift.inference.unknown):
- `confidence`  the (calibrated, when the run has a temperature) top-1 probability;
- `knn`         minus the distance from the image's L2-normalised penultimate features to its k-th
                nearest training image (Sun et al. 2022, "Out-of-distribution detection with deep
                nearest neighbors"); for models without a torch feature layer (classical, ensembles)
                the square roots of the probabilities stand in for features.
(`energy` = logsumexp(logits) is also reported by `evaluate_unknowns` for torch models.)

Thresholds are chosen on the run's validation images (all of known classes) for a target
false-rejection rate f: each score's threshold is its f/2 quantile and an image is rejected when
either score is below its threshold, so at most about f of known-class images are rejected.

Where it goes: the rule (k, f, thresholds) into the run's inference spec (`unknown`, with this fit's report
under fits["unknown"]), and the feature bank with the sorted validation scores beside it
(RunFolder.unknown_bank_path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift.atomic import atomic_path
from picsift.config import check_number
from picsift.errors import DatasetError
from picsift.improve.rundata import split_data
from picsift.inference import Predictor, UnknownRule, read_spec, write_spec
from picsift.inference.predictor import fitted_rejector
from picsift.inference.unknown import UnknownRejector, knn_score
from picsift.runs import RunFolder
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")


@dataclass
class UnknownDetector:
    """A run's predictor with its fitted rejector: scores and decisions from images."""

    predictor: Predictor
    rejector: UnknownRejector

    @property
    def conf_threshold(self) -> float:
        """The rejector's top-1 confidence threshold, fitted on validation images."""
        return self.rejector.rule.confidence_threshold

    @property
    def knn_threshold(self) -> float:
        """The rejector's nearest-neighbour score threshold, fitted on validation images."""
        return self.rejector.rule.knn_threshold

    def scores(self, x: np.ndarray, probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-image scores (higher = more known): confidence, knn and `combined` (min of ECDF ranks)."""
        if probs is None:
            probs = self.predictor.predict_arrays(x)
        feats, _ = self.predictor.features(x)
        return self.rejector.scores(feats, probs)

    def __call__(self, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Bool (N,): True where the image should be reported as "unknown"."""
        feats, _ = self.predictor.features(x)
        return self.rejector.rejects(feats, probs)


def check_target_frr(target_frr: float) -> float:
    """`target_frr` when it is a share in (0, 1); ConfigError naming --target-frr otherwise (NaN too)."""
    return check_number(
        target_frr, "--target-frr (a share of known images)", low=0, high=1, low_open=True, high_open=True
    )


def fit_unknown(
    run_dir: Path | RunFolder,
    ws: Workspace | None = None,
    target_frr: float = 0.05,
    k: int = 10,
    bank_size: int = 5000,
) -> dict[str, Any]:
    """Fit the rejection thresholds on the run's validation images; store the rule and its feature bank."""
    check_target_frr(target_frr)
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    predictor = Predictor.from_run(run)
    train = split_data(run, "train", ws, limit=bank_size)
    val = split_data(run, "val", ws)
    if len(val.y) < 10:
        raise DatasetError(
            f"unknown rejection needs at least 10 validation images to set thresholds; run {run.name} has {len(val.y)}"
        )
    bank, _ = predictor.features(train.x)
    val_probs = predictor.predict_arrays(val.x)
    val_feats, _ = predictor.features(val.x)
    # A validation image is its own class's neighbour in the bank only if it was trained on; it was not.
    val_conf = np.sort(val_probs.max(axis=1))
    val_knn = np.sort(knn_score(val_feats, bank, k))
    rule = UnknownRule(
        k=k,
        target_frr=target_frr,
        confidence_threshold=float(np.quantile(val_conf, target_frr / 2, method="lower")),
        knn_threshold=float(np.quantile(val_knn, target_frr / 2, method="lower")),
    )
    with atomic_path(run.unknown_bank_path) as tmp, tmp.open("wb") as f:  # a kill mid-write leaves the old bank
        np.savez_compressed(f, bank=bank.astype(np.float16), val_conf=val_conf, val_knn=val_knn)
    rejector = UnknownRejector(rule, bank.astype(np.float16).astype(np.float32), val_conf, val_knn)
    rejected = rejector.rejects(val_feats, val_probs)
    info = {
        "target_frr": target_frr,
        "k": k,
        "n_bank": int(len(bank)),
        "n_val": int(len(val.y)),
        "temperature": predictor.temperature,
        "thresholds": {"confidence": rule.confidence_threshold, "knn": rule.knn_threshold},
        "val_rejection_rate": float(rejected.mean()),
        "bank": run.unknown_bank_path.name,
    }
    write_spec(run, read_spec(run).replace(unknown=rule).with_fit("unknown", info))
    log.info(
        "unknown rejection for %s: thresholds %s, val rejection %.3f",
        run.name,
        info["thresholds"],
        info["val_rejection_rate"],
    )
    return info


def load_detector(run_dir: Path | RunFolder) -> UnknownDetector:
    """The run's fitted detector; ConfigError (saying how to fit one) when it has none. Never fits."""
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    predictor = Predictor.from_run(run)
    how = f"fit it with `picsift calibrate --run {run.path}`"
    return UnknownDetector(predictor, fitted_rejector(predictor.spec, run.unknown_bank_path, f"run {run.name}", how))


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Probability that a random known image scores higher than a random unknown one."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(known)), np.zeros(len(unknown))]
    return float(roc_auc_score(y, np.r_[known, unknown]))


def evaluate_unknowns(detector: UnknownDetector, x_known: np.ndarray, x_unknown: np.ndarray) -> dict[str, Any]:
    """AUROC of each score for known-class images vs images of classes the model never saw, and the
    fraction of each group the fitted rule rejects."""
    out: dict[str, Any] = {"n_known": int(len(x_known)), "n_unknown": int(len(x_unknown)), "auroc": {}}
    sk = detector.scores(x_known)
    su = detector.scores(x_unknown)
    for name in sk:
        out["auroc"][name] = auroc(sk[name], su[name])
    _, lk = detector.predictor.features(x_known)
    _, lu = detector.predictor.features(x_unknown)
    if lk is not None and lu is not None:
        energy_k = torch.logsumexp(torch.from_numpy(lk), 1).numpy()
        energy_u = torch.logsumexp(torch.from_numpy(lu), 1).numpy()
        out["auroc"]["energy"] = auroc(energy_k, energy_u)
    out["known_rejected"] = float(detector(x_known, detector.predictor.predict_arrays(x_known)).mean())
    out["unknown_rejected"] = float(detector(x_unknown, detector.predictor.predict_arrays(x_unknown)).mean())
    return out
