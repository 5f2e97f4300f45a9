"""Temperature scaling (Guo et al. 2017) fitted on a run's validation data.

One scalar T divides the log-probabilities: p_T = softmax(log p / T). For a softmax network this is
exactly softmax(logits / T); for classical models and ensembles, which only give probabilities, it
is the same family of maps. T > 1 softens over-confident predictions, T < 1 sharpens; the argmax,
and so accuracy, never changes. T is fitted by LBFGS on the validation negative log-likelihood
(in log T, so T stays positive); if the optimum were worse than T = 1 (numerically), T = 1 is kept,
so fitting never increases validation NLL.

File format: `calibration.json` in the run folder, read by `Predictor.from_run` (which then applies
T to every prediction) and by the export stage (which should copy it into the bundle and apply it
after its softmax in the same way):

    {
      "method": "temperature",
      "temperature": 1.73,                 # float > 0; p_T = softmax(log(p) / temperature)
      "fitted_on": "val", "n": 1000,       # the split and number of images T was fitted on
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
from picsift.improve.rundata import log_probs, split_data
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
CALIBRATION_FILE = "calibration.json"
DIAGRAM_FILE = "calibration.png"


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """(N, K) probabilities -> (N, K) probabilities softened (T > 1) or sharpened (T < 1)."""
    if temperature == 1.0 or len(probs) == 0:
        return np.asarray(probs, dtype=np.float32)
    z = log_probs(probs) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    if len(y) == 0:
        return float("nan")
    return float(-log_probs(probs)[np.arange(len(y)), y].mean())


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> tuple[float, list[dict[str, Any]]]:
    """Expected calibration error of top-1 confidence and the reliability bins behind it."""
    from picsift.evaluate.calibration import expected_calibration_error, reliability_bins

    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    bins = reliability_bins(conf, correct, n_bins)
    return expected_calibration_error(bins), [b.to_dict() for b in bins]


def fit_temperature(probs: np.ndarray, y: np.ndarray, max_iter: int = 100) -> float:
    """The T minimising NLL of softmax(log p / T) on (probs, y); 1.0 when that is no better."""
    if len(y) == 0:
        raise DatasetError("temperature scaling needs labelled validation images; the run has none")
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


def calibrate(run_dir: Path, ws: Workspace | None = None, tta: bool = False) -> dict[str, Any]:
    """Fit T on the run's validation images, report NLL/ECE (val and test), write calibration.json."""
    from picsift.deploy.predictor import Predictor
    from picsift.train.runs import write_json

    predictor = Predictor.from_run(run_dir)
    predictor.temperature = None  # fit on raw probabilities, even when re-calibrating
    if tta:
        predictor.enable_tta(run_dir)
    val = split_data(run_dir, "val", ws)
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
    test = split_data(run_dir, "test", ws)
    # The diagram shows held-out test images when there are any (T never saw them), else val.
    split, shown_probs, shown_y = "val", probs, val.y
    if len(test.y):
        split, shown_probs, shown_y = "test", predictor.predict_arrays(test.x), test.y
        result["test"] = _summary(shown_probs, apply_temperature(shown_probs, t), shown_y)
    _, before = ece(shown_probs, shown_y)
    _, after = ece(apply_temperature(shown_probs, t), shown_y)
    report = result[split]
    reliability_diagram(
        run_dir / DIAGRAM_FILE,
        before,
        after,
        f"{run_dir.name} ({split}, T={t:.2f}): ECE {report['ece_before']:.3f} -> {report['ece_after']:.3f}",
    )
    result["reliability_diagram"] = DIAGRAM_FILE
    result["bins"] = {"split": split, "before": before, "after": after}
    write_json(run_dir / CALIBRATION_FILE, result)
    log.info("temperature %.3f fitted on %d validation images", t, len(val.y))
    return result


def read_temperature(run_dir: Path) -> float | None:
    """The fitted temperature of a run, or None if it was never calibrated."""
    import json

    path = Path(run_dir) / CALIBRATION_FILE
    if not path.exists():
        return None
    return float(json.loads(path.read_text())["temperature"])
