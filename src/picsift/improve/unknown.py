"""Unknown-class rejection: say "unknown" instead of a confident wrong class for images unlike any class.

Two scores, both "higher = more like the training classes":
- `confidence`  the (calibrated, when calibration.json exists) top-1 probability;
- `knn`         minus the distance from the image's L2-normalised features to its k-th nearest training
                image (Sun et al. 2022, "Out-of-distribution detection with deep nearest neighbors"):
                a pretrained embedding when its weights are installed at fitting time
                (`picsift.features.default_embedding`; recorded as "features" in unknown.json, and then
                needed wherever the detector runs), else the model's penultimate features; for models
                without a torch feature layer (classical, ensembles) the square roots of the
                probabilities stand in for features.
(`energy` = logsumexp(logits) is also reported by `evaluate_unknowns` for torch models.)

Thresholds are chosen on the run's validation images (all of known classes) for a target
false-rejection rate f: each score's threshold is its f/2 quantile and an image is rejected when
either score is below its threshold, so at most about f of known-class images are rejected.

Files in the run folder: `unknown.json` (settings, thresholds, measured validation rejection rate)
and `unknown_bank.npz` (the training feature bank and the validation scores).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift.errors import ConfigError, DatasetError
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
UNKNOWN_FILE = "unknown.json"
BANK_FILE = "unknown_bank.npz"


@torch.no_grad()
def features_and_logits(predictor: Any, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 (N, S, S, 3) -> (features (N, D) L2-normalised, logits (N, K) or None).

    Torch models: the input of the last nn.Linear (the penultimate features), caught by a hook.
    Other families: sqrt of the probabilities (a point on the unit sphere, like normalised features).
    """
    from torch import nn

    from picsift.train.transforms import eval_transform

    model = predictor.artifact.model
    if not isinstance(model, nn.Module):
        feats = np.sqrt(np.clip(predictor.predict_raw(x, batch_size), 0, 1)).astype(np.float32)
        return feats, None
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        feats = np.sqrt(np.clip(predictor.predict_raw(x, batch_size), 0, 1)).astype(np.float32)
        return feats, None
    caught: list[torch.Tensor] = []
    handle = linears[-1].register_forward_hook(lambda _m, inp, _out: caught.append(inp[0].flatten(1).float()))
    model.eval()
    tf = eval_transform(predictor.data_config)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    feats, logits = [], []
    try:
        for i in range(0, len(xt), batch_size):
            caught.clear()
            out = model(tf(xt[i : i + batch_size]).to(predictor.device)).float().cpu()
            logits.append(out)
            feats.append(caught[-1].cpu())
    finally:
        handle.remove()
    f = torch.nn.functional.normalize(torch.cat(feats), dim=1).numpy()
    return f.astype(np.float32), torch.cat(logits).numpy()


MODEL_FEATURES = "model"  # the run's own penultimate features (features_and_logits)


def knn_features(predictor: Any, x: np.ndarray, features: str = MODEL_FEATURES) -> np.ndarray:
    """uint8 (N, S, S, 3) -> L2-normalised float32 (N, D) for the kNN score: the model's own features
    ("model") or a picsift.features extractor's (a pretrained backbone)."""
    if features == MODEL_FEATURES:
        return features_and_logits(predictor, x)[0]
    from picsift.features import extract_arrays

    f = extract_arrays(x, features)
    return (f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def knn_score(feats: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """Minus the distance to the k-th nearest bank vector (both L2-normalised)."""
    k = max(1, min(k, len(bank)))
    out = np.empty(len(feats), dtype=np.float32)
    b = torch.from_numpy(bank.astype(np.float32))
    for i in range(0, len(feats), 1024):
        q = torch.from_numpy(feats[i : i + 1024].astype(np.float32))
        d = torch.cdist(q, b)
        out[i : i + 1024] = -torch.topk(d, k, dim=1, largest=False).values[:, -1].numpy()
    return out


def ecdf(sorted_ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fraction of the reference scores at or below each value."""
    return np.searchsorted(sorted_ref, values, side="right") / max(len(sorted_ref), 1)


@dataclass
class UnknownDetector:
    """Rejects images whose confidence or kNN score falls below thresholds fitted on validation data."""

    predictor: Any
    bank: np.ndarray
    val_conf: np.ndarray  # sorted validation confidences
    val_knn: np.ndarray  # sorted validation kNN scores
    k: int
    target_frr: float
    features: str = MODEL_FEATURES  # what the kNN score reads (see knn_features)

    @property
    def conf_threshold(self) -> float:
        return float(np.quantile(self.val_conf, self.target_frr / 2, method="lower"))

    @property
    def knn_threshold(self) -> float:
        return float(np.quantile(self.val_knn, self.target_frr / 2, method="lower"))

    def scores(self, x: np.ndarray, probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-image scores (higher = more known): confidence, knn and `combined` (min of ECDF ranks)."""
        if probs is None:
            probs = self.predictor.predict_arrays(x)
        feats = knn_features(self.predictor, x, self.features)
        conf = np.asarray(probs).max(axis=1)
        knn = knn_score(feats, self.bank, self.k)
        combined = np.minimum(ecdf(self.val_conf, conf), ecdf(self.val_knn, knn))
        return {"confidence": conf, "knn": knn, "combined": combined}

    def __call__(self, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Bool (N,): True where the image should be reported as "unknown"."""
        s = self.scores(x, probs)
        return (s["confidence"] < self.conf_threshold) | (s["knn"] < self.knn_threshold)


def fit_unknown(
    run_dir: Path, ws: Workspace | None = None, target_frr: float = 0.05, k: int = 10, bank_size: int = 5000
) -> dict[str, Any]:
    """Fit the rejection thresholds on the run's validation images; writes unknown.json + bank."""
    from picsift.deploy.predictor import Predictor
    from picsift.improve.rundata import split_data
    from picsift.train.runs import write_json

    if not 0 < target_frr < 1:
        raise ConfigError(f"the target false-rejection rate must be in (0, 1), got {target_frr}")
    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir)
    train = split_data(run_dir, "train", ws, limit=bank_size)
    val = split_data(run_dir, "val", ws)
    if len(val.y) < 10:
        raise DatasetError(
            f"unknown rejection needs at least 10 validation images to set thresholds; run {run_dir.name} "
            f"has {len(val.y)}"
        )
    from picsift.features import default_embedding

    choice = default_embedding(fallback=MODEL_FEATURES)
    bank = knn_features(predictor, train.x, choice.extractor)
    val_probs = predictor.predict_arrays(val.x)
    val_feats = knn_features(predictor, val.x, choice.extractor)
    # A validation image is its own class's neighbour in the bank only if it was trained on; it was not.
    val_conf = np.sort(val_probs.max(axis=1))
    val_knn = np.sort(knn_score(val_feats, bank, k))
    np.savez_compressed(run_dir / BANK_FILE, bank=bank.astype(np.float16), val_conf=val_conf, val_knn=val_knn)
    detector = UnknownDetector(predictor, bank, val_conf, val_knn, k, target_frr, choice.extractor)
    rejected = detector(val.x, val_probs)
    info = {
        "target_frr": target_frr,
        "k": k,
        "n_bank": int(len(bank)),
        "n_val": int(len(val.y)),
        "temperature": predictor.temperature,
        "thresholds": {"confidence": detector.conf_threshold, "knn": detector.knn_threshold},
        "val_rejection_rate": float(rejected.mean()),
        "bank": BANK_FILE,
        "features": choice.extractor,
        "embedding": choice.text,
    }
    write_json(run_dir / UNKNOWN_FILE, info)
    log.info(
        "unknown rejection for %s: thresholds %s, val rejection %.3f",
        run_dir.name,
        info["thresholds"],
        info["val_rejection_rate"],
    )
    return info


def load_detector(
    run_dir: Path, predictor: Any = None, ws: Workspace | None = None, fit_if_missing: bool = True
) -> UnknownDetector:
    """The run's detector (fitting it first when unknown.json is missing and the images are at hand)."""
    from picsift.deploy.predictor import Predictor

    run_dir = Path(run_dir)
    if not (run_dir / UNKNOWN_FILE).exists():
        if not fit_if_missing:
            raise ConfigError(f"run {run_dir.name} has no {UNKNOWN_FILE}: fit it with picsift.improve.unknown")
        fit_unknown(run_dir, ws)
    info = json.loads((run_dir / UNKNOWN_FILE).read_text())
    data = np.load(run_dir / BANK_FILE)
    return UnknownDetector(
        predictor or Predictor.from_run(run_dir),
        data["bank"].astype(np.float32),
        data["val_conf"],
        data["val_knn"],
        int(info["k"]),
        float(info["target_frr"]),
        str(info.get("features", MODEL_FEATURES)),
    )


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
    _, lk = features_and_logits(detector.predictor, x_known)
    _, lu = features_and_logits(detector.predictor, x_unknown)
    if lk is not None and lu is not None:
        energy_k = torch.logsumexp(torch.from_numpy(lk), 1).numpy()
        energy_u = torch.logsumexp(torch.from_numpy(lu), 1).numpy()
        out["auroc"]["energy"] = auroc(energy_k, energy_u)
    out["known_rejected"] = float(detector(x_known, detector.predictor.predict_arrays(x_known)).mean())
    out["unknown_rejected"] = float(detector(x_unknown, detector.predictor.predict_arrays(x_unknown)).mean())
    return out
