"""Label issues by confident learning: out-of-sample predicted probabilities from k-fold cross-validation
of a fast model, fed to `cleanlab.filter.find_label_issues`.

With a pretrained embedding, the model is a logistic-regression head on it (`logistic_cv_pred_probs`,
scikit-learn's cross_val_predict, standardised features, strong L2: a linear probe). Without one, two fast
models on hand-made descriptors and pixels: a closed-form linear model (`cross_val_pred_probs`, milliseconds),
and picsift's own from-scratch CNN trained once per fold under a time budget (`cnn_cross_val_logits`, about a
minute for 2,000 images on 2 cores); `combine_probs` ensembles the two (each fails on different images).

Out-of-sample matters: a model scoring images it was trained on has memorised their (possibly wrong)
labels and would vouch for them.

Which images to flag (`select_label_issues`, the default "fdr" rule): those whose out-of-fold probability of the
given label is lowest, down to the largest threshold at which the estimated share of correct labels among the
flagged stays within `max_fdr` (a false discovery rate, Benjamini & Hochberg 1995). The estimate needs no clean
subset: a wrong label is modelled as a label drawn at random from the other classes, so the probabilities the
model gives an image's *other* classes are an empirical null for "the given label is wrong" (Efron, "Large-Scale
Simultaneous Hypothesis Testing", JASA 2004); the share of wrong labels is bounded as in Storey's estimate of the
null proportion (Storey, JRSS-B 2002): no threshold can catch more flipped labels than images. Confident
learning's own counts (cleanlab's `filter_by` rules) assume a model that mostly agrees with the labels: with a
weak one (72% agreement on 32 px CIFAR-10) they flag about twice the number of flipped labels, most of them
correct (bench/results/curate_bench.json); the "fdr" rule keeps its precision near 1 - max_fdr and lets the
recall fall instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsift.config import LABEL_FILTERS
from picsift.curate.findings import Finding
from picsift.numerics import nll, softmax


def _fit_predict(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, n_classes: int, model: str, l2: float, seed: int
) -> np.ndarray:
    """Multinomial logistic regression (or a one-hidden-layer MLP) fitted full-batch with L-BFGS."""
    import torch

    torch.manual_seed(seed)
    xt = torch.from_numpy(xtr)
    yt = torch.from_numpy(ytr.astype(np.int64))
    d = xt.shape[1]
    if model == "mlp":
        net: torch.nn.Module = torch.nn.Sequential(
            torch.nn.Linear(d, 256), torch.nn.GELU(), torch.nn.Dropout(0.2), torch.nn.Linear(256, n_classes)
        )
    else:
        net = torch.nn.Linear(d, n_classes)
    opt = torch.optim.LBFGS(
        net.parameters(), lr=1.0, max_iter=60, history_size=10, line_search_fn="strong_wolfe", tolerance_change=1e-6
    )
    weights = [p for name, p in net.named_parameters() if "weight" in name]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt) + l2 * sum((w**2).sum() for w in weights)
        loss.backward()
        return loss

    net.train()
    opt.step(closure)
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(xte)), dim=1).numpy().astype(np.float64)


def _ridge_scores(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, n_classes: int, l2: float) -> np.ndarray:
    """Closed-form ridge regression onto one-hot targets: one (D, D) solve, milliseconds even on a busy CPU."""
    x1 = np.hstack([xtr, np.ones((len(xtr), 1), np.float32)]).astype(np.float64)
    t = np.eye(n_classes)[ytr]
    reg = l2 * len(xtr) * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the bias
    w = np.linalg.solve(x1.T @ x1 + reg, x1.T @ t)
    return np.hstack([xte, np.ones((len(xte), 1), np.float32)]).astype(np.float64) @ w


# Ridge scores are small and need sharpening only; network logits may need softening too.
RIDGE_GRID = np.geomspace(1.0, 200.0, 40)
LOGIT_GRID = np.geomspace(0.05, 20.0, 60)


def _fit_temperature(scores: np.ndarray, y: np.ndarray, grid: np.ndarray = RIDGE_GRID) -> float:
    """The softmax scale with the lowest log loss (a 1-D grid search: one scalar, hard to overfit)."""
    losses = [nll(softmax(scores * g), y) for g in grid]
    return float(grid[int(np.argmin(losses))])


def cross_val_pred_probs(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    folds: int = 5,
    model: str = "ridge",
    l2: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """(N, D) features and (N,) int labels -> (N, n_classes) out-of-sample probabilities (stratified k-fold).

    model: "ridge" (closed-form ridge on one-hot targets, then one softmax temperature fitted to all the
    out-of-fold scores; the default because it costs milliseconds), "logreg" (multinomial logistic
    regression, L-BFGS) or "mlp" (one hidden layer, L-BFGS).
    """
    from sklearn.model_selection import StratifiedKFold

    if model not in ("ridge", "logreg", "mlp"):
        raise ValueError(f"model must be ridge, logreg or mlp, got {model!r}")
    x = np.asarray(features, dtype=np.float32)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x = (x - mu) / sd  # standardised once: a per-fold refit would not change the ranking materially
    y = np.asarray(labels, dtype=np.int64)
    min_count = int(np.bincount(y, minlength=n_classes)[np.unique(y)].min())
    k = max(2, min(folds, min_count))
    probs = np.zeros((len(y), n_classes), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    if model == "ridge":
        scores = np.zeros((len(y), n_classes), dtype=np.float64)
        for tr, te in splitter.split(x, y):
            scores[te] = _ridge_scores(x[tr], y[tr], x[te], n_classes, 1.0 if l2 is None else l2)
        return softmax(scores * _fit_temperature(scores, y))
    for f, (tr, te) in enumerate(splitter.split(x, y)):
        probs[te] = _fit_predict(x[tr], y[tr], x[te], n_classes, model, 1e-3 if l2 is None else l2, seed + f)
    return probs


def logistic_cv_pred_probs(
    features: np.ndarray, labels: np.ndarray, n_classes: int, *, folds: int = 5, c: float = 0.001, seed: int = 0
) -> np.ndarray:
    """(N, D) embeddings and (N,) int labels in [0, n_classes) -> (N, n_classes) out-of-fold probabilities of a
    standardised multinomial logistic regression (scikit-learn `cross_val_predict`, stratified k-fold).

    c: inverse L2 strength (scikit-learn's C). A strong penalty keeps the head from fitting the flipped labels of
    its training folds: on the planted CIFAR-10 benchmark's tuning seed (bench/curate_bench.py, seed 1, which is
    not reported) the F1 of the flagged images fell steadily from C = 0.001 (0.51) to 0.01 (0.42) and 0.05 (0.37)
    with EfficientNet-Lite0 features. Folds: at most the smallest class's count, at least 2.
    """
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    present = np.unique(y)
    k = max(2, min(folds, int(np.bincount(y)[present].min())))
    from threadpoolctl import threadpool_limits

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    # One BLAS thread: the problem is small, and on a busy machine threads fighting for the cores made the
    # five folds take minutes instead of seconds (measured on 2 shared cores: 190 s vs 3 s).
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence chatter on nearly separable folds
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        probs = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")
    # Columns follow the classes present; a class with no images keeps probability 0.
    out = np.zeros((len(y), n_classes), dtype=np.float64)
    out[:, present] = probs
    return out


def cnn_cross_val_logits(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    folds: int = 4,
    budget_s: float | None = 60.0,
    epochs: int | None = None,
    size: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """(N, S, S, 3) uint8 images and (N,) int labels -> (N, n_classes) out-of-fold logits of picsift's fast
    CNN (the `fastcnn` recipe from scratch, no weights needed), trained once per stratified fold with
    an equal share of budget_s each (training and scoring of all folds fit the budget; and/or a fixed number
    of epochs), scored with test-time flips and shifts.
    Images are resized to size px."""
    import tempfile
    import time

    import torch
    import torch.nn.functional as F
    from sklearn.model_selection import StratifiedKFold

    from picsift.config import TrainConfig
    from picsift.models.registry import get_spec
    from picsift.train.data import TrainData
    from picsift.train.fast import fit_fast
    from picsift.train.fast.evaluate import logits_for

    y = np.asarray(labels, dtype=np.int64)
    x = np.asarray(images, dtype=np.uint8)
    if x.shape[1] != size:  # area-style resize, once for all folds
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    min_count = int(np.bincount(y, minlength=n_classes)[np.unique(y)].min())
    k = max(2, min(folds, min_count))
    spec = get_spec("fastcnn")
    dc = spec.data_config.with_size(size)
    classes = [str(c) for c in range(n_classes)]
    cpu = torch.device("cpu")
    out = np.zeros((len(y), n_classes), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    t0 = time.perf_counter()
    score_s = 0.0  # the last fold's scoring time, reserved from each fold's training time
    with tempfile.TemporaryDirectory(prefix="picsift-labels-") as tmp:
        for f, (tr, te) in enumerate(splitter.split(x, y)):
            data = TrainData(classes, dc, x[tr], y[tr], x[te][:0], y[te][:0])
            budget_min = None
            if budget_s:  # the budget covers training and scoring of every fold: a busy machine trains less
                left = budget_s - (time.perf_counter() - t0)
                budget_min = max(0.25 * budget_s / k, left / (k - f) - score_s) / 60.0
            cfg = TrainConfig(seed=seed + f, device="cpu", time_budget_min=budget_min, epochs=epochs)
            trained = fit_fast(spec, data, cfg, cpu, lambda row: None, Path(tmp))
            ts = time.perf_counter()
            out[te] = logits_for(trained.model, x[te], dc, cpu, tta=True).numpy()
            score_s = time.perf_counter() - ts
    return out


def combine_probs(cnn_logits: np.ndarray, linear_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The CNN's out-of-fold logits (temperature fitted to the given labels) and a linear model's
    probabilities, ensembled by a geometric mean (product of experts, renormalised)."""
    y = np.asarray(labels, dtype=np.int64)
    p_cnn = softmax(cnn_logits * _fit_temperature(cnn_logits, y, LOGIT_GRID))
    return softmax(0.5 * np.log(p_cnn + 1e-9) + 0.5 * np.log(linear_probs + 1e-9))


DEFAULT_MAX_FDR = 0.2
CONFIDENT_AGREEMENT = 0.8  # "auto" trusts confident learning's counts from this label agreement up
# The noise rate is bounded only at thresholds with at least MIN_BELOW images and MIN_BELOW_SHARE of all below them:
# the smallest of many noisy bounds underestimates the rate (and so the precision). On the planted CIFAR-10 tuning
# seeds (2,000 images, 5% flipped, Lite0 features; not the reported ones) 1% of the images gave precision 0.90 /
# recall 0.55 on average for a target precision of 0.8, 2.5% gave 0.81 / 0.69. A model confidently wrong on 30% of
# the images (tests/test_curate_checks.py) still overestimates the precision: 0.42-0.57 flagged rightly.
MIN_BELOW = 10
MIN_BELOW_SHARE = 0.025


@dataclass(frozen=True)
class LabelSelection:
    """The images a selection rule flags (`issues`: bool (N,)) and, for "fdr", what it estimated: the share of
    wrong labels (`noise_rate`, in [0, 0.5]), the threshold on p(given label) (`threshold`, None when nothing is
    flagged) and the estimated share of the flagged whose label is wrong (`est_precision`)."""

    issues: np.ndarray
    rule: str
    noise_rate: float | None = None
    threshold: float | None = None
    est_precision: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The rule and its estimates as plain JSON values (rounded to 4 places)."""
        out: dict[str, Any] = {"rule": self.rule, "flagged": int(self.issues.sum())}
        for key in ("noise_rate", "threshold", "est_precision"):
            value = getattr(self, key)
            if value is not None:
                out[key] = round(float(value), 4)
        return out


def fdr_label_issues(labels: np.ndarray, pred_probs: np.ndarray, max_fdr: float = DEFAULT_MAX_FDR) -> LabelSelection:
    """(N,) int labels and (N, K) out-of-sample probabilities -> the images with the lowest p(given label), as many
    as keep the estimated false discovery rate within `max_fdr` (module docstring).

    With s_i = p(given label of image i), F_obs(t) the share of images with s < t and F_null(t) the share of the
    N (K - 1) probabilities of other classes below t: since at most all images below t can be mislabelled,
    noise_rate <= F_obs(t) / F_null(t) for every t (Storey's bound on the null share), and the estimate is the
    smallest such bound over the thresholds with at least max(MIN_BELOW, MIN_BELOW_SHARE of N) images below them (fewer
    would let chance decide it; so with under ~10 wrong labels the rate is overestimated, and the rule suits
    sets of hundreds of images and more). The images s <= t are mislabelled with an estimated precision of noise_rate * F_null(t) /
    F_obs(t); t is the largest at which that is at least 1 - max_fdr. An image whose given label is the model's
    most probable class is never flagged. Raises ValueError for max_fdr outside (0, 1), or pred_probs not
    (N, K >= 2)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(pred_probs, dtype=np.float64)
    if not 0.0 < max_fdr < 1.0:
        raise ValueError(f"max_fdr must be in (0, 1), got {max_fdr}")
    if p.ndim != 2 or p.shape[0] != len(y) or p.shape[1] < 2:
        raise ValueError(f"pred_probs must be (N, K >= 2) with N = {len(y)} labels; got {p.shape}")
    n = len(y)
    s = p[np.arange(n), y]
    other = np.ones_like(p, dtype=bool)
    other[np.arange(n), y] = False
    null = np.sort(p[other])
    order = np.sort(s)
    # The bound just below each s (images strictly below it) and at t above every s (ratio 1).
    below = np.searchsorted(order, order, side="left")
    null_below = np.searchsorted(null, order, side="left") / len(null)
    valid = (below >= max(MIN_BELOW, round(MIN_BELOW_SHARE * n))) & (null_below > 0)
    bounds = below[valid] / n / null_below[valid]
    noise_rate = float(min(bounds.min(initial=1.0), 0.5))
    # Flagging every s <= order[j]: images flagged and the estimated share of them that is mislabelled.
    flagged = np.searchsorted(order, order, side="right")
    precision = noise_rate * n * np.searchsorted(null, order, side="right") / len(null) / flagged
    good = np.flatnonzero(precision >= 1.0 - max_fdr)
    if len(good) == 0:
        return LabelSelection(np.zeros(n, dtype=bool), "fdr", noise_rate)
    last = int(good.max())
    threshold = float(order[last])
    issues = (s <= threshold) & (p.argmax(1) != y)
    return LabelSelection(issues, "fdr", noise_rate, threshold, float(min(1.0, precision[last])))


def select_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, filter_by: str = "auto", max_fdr: float = DEFAULT_MAX_FDR
) -> LabelSelection:
    """The images to flag by `filter_by`: "fdr" (`fdr_label_issues`), one of cleanlab's `find_label_issues`
    rules (LABEL_FILTERS), or "auto": cleanlab's "both" (flagged when both confident-learning rules agree) when
    the model's top class agrees with at least CONFIDENT_AGREEMENT of the labels, what confident learning
    assumes, else "fdr" (with a weaker model confident learning flagged about twice the number of wrong labels
    on the planted CIFAR-10 benchmark, bench/curate_bench.py). Raises ValueError for another name."""
    if filter_by == "auto":
        agreement = float((np.asarray(pred_probs).argmax(1) == np.asarray(labels)).mean()) if len(labels) else 1.0
        filter_by = "both" if agreement >= CONFIDENT_AGREEMENT else "fdr"
    if filter_by == "fdr":
        return fdr_label_issues(labels, pred_probs, max_fdr)
    if filter_by not in LABEL_FILTERS:
        raise ValueError(f"filter_by must be one of {', '.join(LABEL_FILTERS)}; got {filter_by!r}")
    from cleanlab.filter import find_label_issues as cl_find

    issues = cl_find(labels=np.asarray(labels, dtype=np.int64), pred_probs=pred_probs, filter_by=filter_by)
    return LabelSelection(np.asarray(issues, dtype=bool), filter_by)


def find_label_issues(
    ids: Sequence[int],
    labels: np.ndarray,
    pred_probs: np.ndarray,
    class_names: Sequence[str],
    *,
    filter_by: str = "auto",
    max_fdr: float = DEFAULT_MAX_FDR,
    selection: LabelSelection | None = None,
) -> list[Finding]:
    """Images whose given label disagrees with out-of-sample predictions, chosen by `select_label_issues`
    (`filter_by`, `max_fdr`), or by a `selection` already made on the same rows.

    Each finding names the given label, the suggested label and the model's confidence in it; the score
    is 1 - p(given label), so the most certain mistakes sort first. Raises ValueError when ids, labels,
    pred_probs (N, len(class_names)) disagree in shape, or for an unknown filter_by.
    """
    y = np.asarray(labels, dtype=np.int64)
    if len(ids) != len(y) or pred_probs.shape != (len(y), len(class_names)):
        raise ValueError(
            f"shapes disagree: {len(ids)} ids, {len(y)} labels, pred_probs {pred_probs.shape}, "
            f"{len(class_names)} classes"
        )
    if len(y) == 0 or len(np.unique(y)) < 2:
        return []
    if selection is None:
        selection = select_label_issues(y, pred_probs, filter_by, max_fdr)
    issues = selection.issues
    findings = []
    for i in (int(v) for v in np.flatnonzero(issues)):
        given, suggested = int(y[i]), int(pred_probs[i].argmax())
        if suggested == given:
            continue
        conf = float(pred_probs[i, suggested])
        findings.append(
            Finding(
                "label_issue",
                (int(ids[i]),),
                float(1.0 - pred_probs[i, given]),
                f"labelled {class_names[given]!r} but looks like {class_names[suggested]!r} (confidence {conf:.2f})",
                {
                    "given_label": class_names[given],
                    "suggested_label": class_names[suggested],
                    "confidence": round(conf, 4),
                    "p_given": round(float(pred_probs[i, given]), 4),
                },
            )
        )
    return findings
