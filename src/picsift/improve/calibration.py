"""Temperature scaling (Guo et al. 2017) fitted on a run's validation data.

One scalar T divides the log-probabilities: p_T = softmax(log p / T). For a softmax network this is
exactly softmax(logits / T); for classical models and ensembles, which only give probabilities, it
is the same family of maps. T > 1 softens over-confident predictions, T < 1 sharpens; the argmax,
and so accuracy, never changes. T is fitted by LBFGS on the validation negative log-likelihood
(in log T, so T stays positive); if the optimum were worse than T = 1 (numerically), T = 1 is kept,
so fitting never increases validation NLL.

Where it goes: the run's inference spec (`temperature`, with this fit's report under fits["calibration"]),
which the Predictor applies to every prediction and `picsift export` copies into the bundle. The report:

    {
      "method": "temperature",
      "temperature": 1.73,                 # float > 0; p_T = softmax(log(p) / temperature)
      "fitted_on": "val", "n": 1000, "tta": false,
      "val":  {"nll_before": .., "nll_after": .., "ece_before": .., "ece_after": .., "accuracy": ..},
      "test": {... same keys ...},         # only when the run has test images (never used for fitting)
      "reliability_diagram": "calibration.png",
      "bins": {"before": [...], "after": [...]}   # evaluate.calibration.ReliabilityBin.to_dict() rows
    }
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift.errors import DatasetError
from picsift.evaluate.calibration import expected_calibration_error, reliability_bins
from picsift.improve.rundata import split_data
from picsift.improve.tta import views_for_fitting
from picsift.inference import Predictor, read_spec, write_spec
from picsift.inference.postprocess import apply_temperature
from picsift.numerics import log_probs, nll
from picsift.runs import RunFolder
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
__all__ = ["apply_temperature", "calibrate", "ece", "fit_temperature", "nll", "reliability_diagram"]


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> tuple[float, list[dict[str, Any]]]:
    """Expected calibration error of top-1 confidence and the reliability bins behind it."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    bins = reliability_bins(conf, correct, n_bins)
    return expected_calibration_error(bins), [b.to_dict() for b in bins]


def _matching_temperature(probs: np.ndarray, target: float) -> float:
    """The T in [0.05, 1] whose softmax(log p / T) has mean top-1 confidence `target` (bisection on log T; the
    mean confidence falls as T grows). 1.0 when the model is already at least that confident."""

    def mean_confidence(t: float) -> float:
        return float(apply_temperature(probs, t).max(axis=1).mean())

    if mean_confidence(1.0) >= target:
        return 1.0
    lo, hi = np.log(0.05), 0.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if mean_confidence(float(np.exp(mid))) > target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def fit_temperature(probs: np.ndarray, y: np.ndarray, max_iter: int = 100) -> float:
    """The T minimising NLL of softmax(log p / T) on (probs, y) (Guo et al. 2017); 1.0 when that is no better.

    When every image is classified right the NLL keeps falling as T -> 0, so the minimum says nothing; T is then
    set so the mean top-1 confidence equals Laplace's rule-of-succession estimate of the accuracy, (n + 1) /
    (n + 2) for n images all right (a model that is right on 179 of 179 validation images should say about 0.99,
    not the 0.8 that label smoothing leaves, nor 1.0)."""
    if len(y) == 0:
        raise DatasetError("temperature scaling needs labelled validation images; the run has none")
    if bool((probs.argmax(axis=1) == np.asarray(y)).all()):
        return _matching_temperature(probs, (len(y) + 1) / (len(y) + 2))
    z = torch.from_numpy(log_probs(probs))
    target = torch.from_numpy(np.asarray(y, dtype=np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), target)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t) or nll(apply_temperature(probs, t), y) > nll(probs, y):
        return 1.0
    return float(np.clip(t, 0.05, 20.0))


def _summary(probs: np.ndarray, calibrated: np.ndarray, y: np.ndarray) -> dict[str, float]:
    e0, _ = ece(probs, y)
    e1, _ = ece(calibrated, y)
    return {
        "n": int(len(y)),
        "accuracy": float((probs.argmax(1) == y).mean()) if len(y) else float("nan"),
        "nll_before": nll(probs, y),
        "nll_after": nll(calibrated, y),
        "ece_before": e0,
        "ece_after": e1,
    }


def reliability_diagram(path: Path, bins_before: list[dict], bins_after: list[dict], title: str) -> Path:
    """A two-panel reliability diagram (accuracy per confidence bin, before and after) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharey=True)
    for ax, bins, name in ((axes[0], bins_before, "before"), (axes[1], bins_after, "after")):
        centers = [(b["lower"] + b["upper"]) / 2 for b in bins]
        accs = [b["accuracy"] or 0.0 for b in bins]
        width = bins[0]["upper"] - bins[0]["lower"]
        ax.bar(centers, accs, width=width * 0.95, color="#4c72b0", edgecolor="black", label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.set_xlabel("confidence")
        ax.set_title(f"{name} temperature scaling")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def calibrate(
    run_dir: Path | RunFolder, ws: Workspace | None = None, tta: bool = False, score_test: bool = True
) -> dict[str, Any]:
    """Fit T on the run's validation images (with its chosen test-time views when `tta`, choosing them first if
    needed), report NLL/ECE (val, and test unless `score_test` is False: training calibrates without reading the
    test images), draw the reliability diagram; store T in the inference spec."""
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(Path(run_dir))
    predictor = Predictor.from_run(run)
    if tta:
        predictor = predictor.with_views(views_for_fitting(run, ws))
    # Fit on the probabilities without a temperature, even when re-calibrating.
    predictor = predictor.with_spec(read_spec(run).replace(temperature=None))
    val = split_data(run, "val", ws)
    probs = predictor.predict_arrays(val.x)
    t = fit_temperature(probs, val.y)
    result: dict[str, Any] = {
        "method": "temperature",
        "temperature": t,
        "fitted_on": "val",
        "n": int(len(val.y)),
        "tta": bool(tta),
        "val": _summary(probs, apply_temperature(probs, t), val.y),
    }
    # The diagram shows held-out test images when there are any (T never saw them), else val.
    split, shown_probs, shown_y = "val", probs, val.y
    test = split_data(run, "test", ws) if score_test else None
    if test is not None and len(test.y):
        split, shown_probs, shown_y = "test", predictor.predict_arrays(test.x), test.y
        result["test"] = _summary(shown_probs, apply_temperature(shown_probs, t), shown_y)
    _, before = ece(shown_probs, shown_y)
    _, after = ece(apply_temperature(shown_probs, t), shown_y)
    report = result[split]
    diagram = run.calibration_plot_path
    reliability_diagram(
        diagram,
        before,
        after,
        f"{run.name} ({split}, T={t:.2f}): ECE {report['ece_before']:.3f} -> {report['ece_after']:.3f}",
    )
    result["reliability_diagram"] = diagram.name
    result["bins"] = {"split": split, "before": before, "after": after}
    write_spec(run, predictor.spec.replace(temperature=t).with_fit("calibration", result))
    log.info("temperature %.3f fitted on %d validation images", t, len(val.y))
    return result


def calibrate_after_training(run_dir: Path, ws: Workspace, n_val: int, val_acc: float | None) -> dict[str, Any]:
    """Fit a temperature on the run's validation images, as `picsift calibrate` does (into the run's inference
    spec, which predict, evaluate, export and the server apply; test images are not read), and return what
    run.json records: the temperature and the validation
    NLL and ECE before and after. The one place training calibrates (`picsift.api.train_model` passes it to
    `picsift.train.run`). Without validation images nothing is fitted and the reason is returned; when the model
    gets every one right, `fit_temperature` matches its confidence to the rule-of-succession accuracy."""
    del val_acc  # the fit itself tells an all-right validation split apart
    if n_val == 0:
        return {"skipped": "no validation images"}
    try:
        fitted = calibrate(run_dir, ws, score_test=False)  # test images stay unread until evaluation
    except DatasetError as e:
        return {"skipped": str(e)}
    val = fitted["val"]
    return {
        "temperature": fitted["temperature"],
        "val_nll_before": val["nll_before"],
        "val_nll_after": val["nll_after"],
        "val_ece_before": val["ece_before"],
        "val_ece_after": val["ece_after"],
    }
