"""Drift: is a new folder of images still like the data a run was trained on?

Three checks, against the run's held-out images (validation, plus test when present; the model
never trained on them, so their confidences are an honest reference):

- all comparisons below use a reference subset with the same predicted class mix as the new images
  (`match_class_mix`), so that a folder of only one class is not mistaken for new-looking data;
- embedding shift: a domain classifier (logistic regression, 5-fold cross-validated) tries to tell
  reference from new images by their features (a pretrained embedding when its weights are installed,
  else the model's penultimate features; see `unknown.knn_features`); its AUC is 0.5 when it cannot (no
  drift) and near 1 when the two sets are easy to tell apart. An MMD (RBF kernel, median
  bandwidth) between the two feature sets is reported alongside.
- class-mix shift: total-variation distance between the predicted class histogram of the new
  images and the training label histogram (0 = same mix, 1 = disjoint).
- confidence shift: mean top-1 confidence of new vs (class-matched) reference images, and the fraction of new
  images below the reference's 10th-percentile confidence (about 0.10 without drift).

The verdict is `retrain` when the embedding AUC >= 0.8 or the mean confidence drops by >= 0.10,
`watch` when the AUC >= 0.65, the confidence drops by >= 0.05 or the class mix moved by >= 0.25,
and `ok` otherwise. These are rules of thumb, explained in the verdict's sentence; with fewer than
about 50 new images every number is noisy, and the result says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from picsift.data.inputs import expand_inputs
from picsift.errors import DatasetError, ImageDecodeError
from picsift.features import default_embedding
from picsift.improve.rundata import split_data
from picsift.inference import Predictor
from picsift.runs import RunFolder, run_workspace
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
MIN_IMAGES = 10


MODEL_FEATURES = "model"  # the run's own penultimate features (Predictor.features)


def drift_features(predictor: Any, x: np.ndarray, features: str = MODEL_FEATURES) -> np.ndarray:
    """uint8 (N, S, S, 3) -> L2-normalised float32 (N, D): the model's own features ("model") or a
    picsift.features extractor's (a pretrained backbone, which sees drift the model was never trained on)."""
    if features == MODEL_FEATURES:
        return np.asarray(predictor.features(x)[0], dtype=np.float32)
    from picsift.features import extract_arrays

    f = extract_arrays(x, features)
    return (f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def domain_auc(ref: np.ndarray, new: np.ndarray, seed: int = 0) -> float:
    """Cross-validated AUC of a logistic regression separating `ref` rows from `new` rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n = min(len(ref), len(new))
    folds = max(2, min(5, n))
    x = np.r_[ref, new].astype(np.float64)
    y = np.r_[np.zeros(len(ref)), np.ones(len(new))]
    clf = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def mmd_rbf(a: np.ndarray, b: np.ndarray) -> float:
    """Biased MMD^2 with an RBF kernel whose bandwidth is the median pairwise distance."""
    import torch

    x, y = torch.from_numpy(a.astype(np.float64)), torch.from_numpy(b.astype(np.float64))
    both = torch.cat([x, y])
    d = torch.cdist(both, both)
    sigma = float(d[d > 0].median()) if (d > 0).any() else 1.0
    k = torch.exp(-(d**2) / (2 * sigma**2))
    n = len(x)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance (in [0, 1]) between two histograms, each normalised to sum 1."""
    p = p / max(p.sum(), 1e-12)
    q = q / max(q.sum(), 1e-12)
    return float(0.5 * np.abs(p - q).sum())


def match_class_mix(ref_pred: np.ndarray, new_pred: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a reference subset whose predicted class mix matches the new images' (no repeats).

    A folder of only cats differs from a mixed reference in embedding and confidence although
    nothing about cat photos changed; comparing against reference images of the same predicted
    classes separates that (class-mix shift, reported on its own) from real covariate shift.
    """
    share = np.bincount(new_pred, minlength=k) / max(len(new_pred), 1)
    members = [np.flatnonzero(ref_pred == c) for c in range(k)]
    # The largest subset size for which every class's quota fits without repeating images.
    n = min((len(members[c]) / share[c] for c in range(k) if share[c] > 0), default=0.0)
    n = min(n, len(ref_pred))
    picked = [rng.choice(members[c], int(round(share[c] * n)), replace=False) for c in range(k) if share[c] > 0]
    return np.sort(np.concatenate(picked)) if picked else np.arange(len(ref_pred))


def verdict(auc: float, conf_drop: float, mix_tv: float, n_new: int) -> tuple[str, str]:
    """("retrain" | "watch" | "ok", the message explaining it) from the domain AUC, the confidence drop and
    the class mix's total variation."""
    reasons = []
    if auc >= 0.8:
        reasons.append(f"the new images are easy to tell apart from the training data (AUC {auc:.2f})")
    if conf_drop >= 0.10:
        reasons.append(f"the model is much less sure of them (mean confidence down {conf_drop:.2f})")
    if reasons:
        level = "retrain"
        text = "Retrain: " + " and ".join(reasons) + ". Label a sample of the new images and train again."
    else:
        if auc >= 0.65:
            reasons.append(f"the new images differ somewhat from the training data (AUC {auc:.2f})")
        if conf_drop >= 0.05:
            reasons.append(f"confidence dropped by {conf_drop:.2f}")
        if mix_tv >= 0.25:
            reasons.append(f"the predicted class mix moved (total variation {mix_tv:.2f})")
        if reasons:
            level = "watch"
            text = "Watch: " + "; ".join(reasons) + ". Check a sample of predictions by hand."
        else:
            level = "ok"
            text = (
                "OK: the new images look like the training data and the model is as confident on them; "
                "no need to retrain."
            )
    if n_new < 50:
        text += f" (Only {n_new} new images: these numbers are noisy.)"
    return level, text


def check_drift(
    run_dir: Path, folder: str | Path, ws: Workspace | None = None, max_images: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Compare the images under `folder` with the run's held-out data; a dict with a plain verdict."""
    run_dir = Path(run_dir)
    paths = expand_inputs([str(folder)])
    rng = np.random.default_rng(seed)
    if len(paths) > max_images:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), max_images, replace=False))]
    predictor = Predictor.from_run(run_dir)
    arrays, unreadable = [], 0
    for p in paths:
        try:
            arrays.append(predictor.decode(p))
        except (ImageDecodeError, OSError):
            unreadable += 1
    if len(arrays) < MIN_IMAGES:
        raise DatasetError(
            f"{folder} holds {len(arrays)} readable images; drift needs at least {MIN_IMAGES} to say anything"
        )
    x_new = np.stack(arrays)
    val = split_data(run_dir, "val", ws, limit=max_images, seed=seed)
    test = split_data(run_dir, "test", ws, limit=max_images, seed=seed)
    x_ref = np.concatenate([val.x, test.x])[:max_images]
    if len(x_ref) < MIN_IMAGES:
        raise DatasetError(f"run {run_dir.name} has {len(x_ref)} held-out images; drift needs {MIN_IMAGES}")
    choice = default_embedding(fallback=MODEL_FEATURES)
    f_ref, f_new = (drift_features(predictor, x, choice.extractor) for x in (x_ref, x_new))
    p_ref = predictor.predict_arrays(x_ref)
    p_new = predictor.predict_arrays(x_new)
    k = len(predictor.classes)
    run = RunFolder(run_dir)
    data = run.read_data_split()
    rows = run_workspace(run, ws).catalog.images(ids=data["train_ids"], readable=None, include_excluded=True)
    index = {c: i for i, c in enumerate(predictor.classes)}
    train_hist = np.bincount([index[r.label] for r in rows if r.label in index], minlength=k).astype(float)
    new_hist = np.bincount(p_new.argmax(1), minlength=k).astype(float)
    raw_auc = domain_auc(f_ref, f_new, seed)
    matched = match_class_mix(p_ref.argmax(1), p_new.argmax(1), k, rng)
    if len(matched) >= MIN_IMAGES:
        f_ref, p_ref = f_ref[matched], p_ref[matched]
        auc = domain_auc(f_ref, f_new, seed)
    else:  # classes the reference hardly predicts: compare with all of it
        auc = raw_auc
    conf_ref, conf_new = p_ref.max(1), p_new.max(1)
    conf_drop = float(conf_ref.mean() - conf_new.mean())
    mix_tv = total_variation(new_hist, train_hist)
    level, text = verdict(auc, conf_drop, mix_tv, len(x_new))
    return {
        "run": run_dir.name,
        "folder": str(folder),
        "n_new": int(len(x_new)),
        "n_unreadable": unreadable,
        "n_reference": int(len(x_ref)),
        "n_reference_class_matched": int(len(f_ref)),
        "embedding": {
            "domain_auc": auc,
            "domain_auc_unmatched": raw_auc,
            "mmd2": mmd_rbf(f_ref[:1000], f_new[:1000]),
            "features": choice.text,
        },  # fmt: skip
        "class_mix": {
            "total_variation": mix_tv,
            "training": {c: int(v) for c, v in zip(predictor.classes, train_hist, strict=True)},
            "predicted_new": {c: int(v) for c, v in zip(predictor.classes, new_hist, strict=True)},
        },
        "confidence": {
            "reference_mean": float(conf_ref.mean()),
            "new_mean": float(conf_new.mean()),
            "drop": conf_drop,
            "new_below_reference_p10": float((conf_new < np.quantile(conf_ref, 0.10)).mean()),
        },
        "verdict": level,
        "message": text,
    }
