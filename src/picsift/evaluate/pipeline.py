"""`picsift.evaluate.run(cfg)`: a trained run + its held-out images -> metrics.json and report.html.

The images are the ones training held out (ids in the run's data.json): the test split when the run
has one, otherwise the validation split, and the choice is written down. Labels come from the
catalog as it is now, so a label fixed after training is scored with its corrected value.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from picsift.config import EvalConfig
from picsift.data.available import SkippedImage, check_strict, decode_available, skipped_dicts
from picsift.data.images import catalog_source, load_rgb
from picsift.errors import DatasetError, ImageDecodeError, RunCorruptError, RunNotFoundError, WorkspaceError
from picsift.evaluate.metrics import compute_metrics, most_confident_mistakes
from picsift.evaluate.report import Mistake, ReportSection, write_report
from picsift.label.links import app_url
from picsift.models.artifact import read_meta
from picsift.runs import RunFolder, is_run_folder, open_run, run_workspace
from picsift.store import ImageRow, Workspace

log = logging.getLogger("picsift.evaluate")


@dataclass
class EvalResult:
    """What evaluating a run produced: the split scored, its metrics, and the metrics, report and predictions
    files written."""

    run_id: str
    run_dir: Path
    split: str  # "test" or "val"
    split_reason: str
    n_images: int
    metrics: dict[str, Any]  # what metrics.json holds
    metrics_path: Path
    report_path: Path
    predictions_path: Path
    # {class: {"count", "reason", "reasons"}}: held-out images not scored, and why (see skipped_by_class)
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_images: list[SkippedImage] = field(default_factory=list)  # files missing or no longer decoding

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy on the evaluated split, in [0, 1]."""
        return float(self.metrics["accuracy"])


def open_workspace(cfg: EvalConfig) -> Workspace:
    """--workspace if given; else, for a run given as a run folder, the workspace that folder lives in."""
    if cfg.workspace is None and is_run_folder(cfg.run):
        try:
            return run_workspace(open_run(None, cfg.run))
        except WorkspaceError:
            pass
    return Workspace.open(cfg.workspace)


def read_data_split(run: RunFolder) -> dict[str, Any]:
    """The run's data.json (the images it trained on and held out); RunNotFoundError when the run has none."""
    if not run.has_data_split():
        raise RunNotFoundError(
            f"run {run.name} has no data.json (the list of images it held out), so it cannot be "
            f"evaluated: train it again with `picsift train`"
        )
    return run.read_data_split()


def choose_split(data: dict[str, Any], wanted: str) -> tuple[str, list[int], str]:
    """-> (split, image ids, why). `wanted`: auto | test | val."""
    test_ids = list(data.get("test_ids") or [])
    val_ids = list(data.get("val_ids") or [])
    if wanted == "test" or (wanted == "auto" and test_ids):
        if not test_ids:
            raise DatasetError("--split test: this run has no test images (the workspace had no test split)")
        reason = "asked for" if wanted == "test" else "the run has a test split"
        return "test", test_ids, reason
    if not val_ids:
        raise DatasetError(
            "this run has neither test nor validation images to evaluate on: import data with a test or "
            "val split (or enough images per class for an automatic validation split) and train again"
        )
    reason = (
        "asked for"
        if wanted == "val"
        else "the run has no test split, so validation is used (optimistic: training chose the kept epoch and "
        "the temperature on these images)"
    )
    return "val", val_ids, reason


NOT_IN_MODEL = "class not in the model (no training images)"


def skipped_by_class(entries: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """(class, reason) per image not scored -> {class: {"count": n, "reason": text, "reasons": {reason: n}}};
    `reason` is the single reason, or "n reason; m reason" when a class's images were skipped for several."""
    grouped: dict[str, Counter[str]] = {}
    for cls, why in entries:
        grouped.setdefault(cls, Counter())[why] += 1
    out: dict[str, dict[str, Any]] = {}
    for cls in sorted(grouped):
        reasons = dict(grouped[cls].most_common())
        text = next(iter(reasons)) if len(reasons) == 1 else "; ".join(f"{n} {why}" for why, n in reasons.items())
        out[cls] = {"count": sum(reasons.values()), "reason": text, "reasons": reasons}
    return out


def select_rows(ws: Workspace, ids: list[int], classes: list[str]) -> tuple[list[ImageRow], list[tuple[str, str]]]:
    """The run's held-out images still usable now, in data.json order, and (class, reason) for each dropped:
    gone from the catalog, unreadable, excluded since training, unlabelled now, or of a class the model
    does not know (it had no training images, or the image was relabelled to a new class)."""
    by_id = {r.id: r for r in ws.catalog.images(ids=ids, readable=None, include_excluded=True)}
    known = set(classes)
    rows: list[ImageRow] = []
    dropped: list[tuple[str, str]] = []
    for image_id in ids:
        row = by_id.get(image_id)
        if row is None:
            dropped.append(("(removed from the catalog)", "removed from the catalog since training"))
        elif not row.readable:
            dropped.append((row.label or "(unlabelled)", "unreadable"))
        elif row.excluded:
            dropped.append((row.label or "(unlabelled)", "excluded"))
        elif row.label is None:
            dropped.append(("(unlabelled)", "no label now"))
        elif row.label not in known:
            dropped.append((row.label, NOT_IN_MODEL))
        else:
            rows.append(row)
    return rows, dropped


def training_setup(run: RunFolder) -> dict[str, Any]:
    """How the run was trained, for the report's header, from its run record (run.json) and config.json (a missing
    or unreadable file, or key, is left out): model, time_budget_min, epochs (run), epochs_asked, image_size (px),
    n_train, train_seconds, kept_epoch (the epoch whose weights were saved; 0: a transfer run's linear probe) and
    val_acc (the saved model's validation accuracy while training, in [0, 1])."""
    try:
        record = run.read_record_if_any()
    except RunCorruptError:
        record = {}
    try:
        config = run.read_config()
    except (RunNotFoundError, RunCorruptError):
        config = {}
    train, data_config = config.get("train") or {}, config.get("data_config") or {}
    asked = config.get("asked") or {}  # `--model auto`: the whole budget asked for, the choice's time included
    setup = {
        "model": record.get("model") or train.get("model"),
        "time_budget_min": asked.get("time_budget_min") or train.get("time_budget_min"),
        "epochs": record.get("epochs"),
        "epochs_asked": train.get("epochs"),
        "image_size": data_config.get("input_size") or train.get("image_size"),
        "n_train": record.get("n_train"),
        "train_seconds": record.get("train_seconds"),
        "kept_epoch": record.get("kept_epoch"),
        "val_acc": record.get("val_acc"),
    }
    return {k: v for k, v in setup.items() if v is not None}


def _thumbnail_source(row: ImageRow, cached: np.ndarray, cache_dir: Path | None = None) -> np.ndarray:
    """The original picture (sharper than the cached training size), or the cached pixels if it is gone."""
    try:
        img = load_rgb(catalog_source(row.path, row.sha256, cache_dir))
        img.thumbnail((256, 256))
        return np.asarray(img)
    except (ImageDecodeError, OSError):
        return cached


def write_predictions(path: Path, rows: list[ImageRow], y: np.ndarray, probs: np.ndarray, classes: list[str]) -> None:
    """Write one CSV row per image: id, path, true and predicted class, top-1 confidence, correct (0/1).

    `y`: (N,) true class indices; `probs`: (N, C) class probabilities, in the order of `classes`."""
    pred = probs.argmax(axis=1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "path", "label", "predicted", "confidence", "correct"])
        for row, t, p, pr in zip(rows, y, pred, probs, strict=True):
            w.writerow([row.id, row.path, classes[t], classes[p], f"{pr[p]:.6f}", int(t == p)])


def record_in_catalog(ws: Workspace, run_id: str, run_dir: Path, model: str, summary: dict[str, Any]) -> None:
    """Add the evaluation to the run's row in the catalog's runs table (keeping training's metrics)."""
    from picsift.store.schema import RunRecord

    with ws.catalog.session() as s:
        record = s.get(RunRecord, run_id)
        if record is None:
            s.add(
                RunRecord(
                    id=run_id,
                    path=str(run_dir),
                    model=model,
                    catalog_hash=summary.get("catalog_hash", ""),
                    metrics={"evaluation": summary},
                )
            )
        else:
            record.metrics = {**(record.metrics or {}), "evaluation": summary}


def run(cfg: EvalConfig, sections: list[ReportSection] | None = None) -> EvalResult:
    """Evaluate a run on its held-out images; write metrics.json, predictions.csv and report.html.

    `sections` are appended to the report after the built-in ones (for stages that add analyses).
    """
    # torch is imported here, not at module level, so metrics and reports stay importable without it.
    from picsift.device import select_device
    from picsift.inference import Predictor

    cfg = cfg.validate()
    label_url = app_url(cfg.label_url)  # a malformed --label-url fails before the model is loaded
    ws = open_workspace(cfg)
    run = open_run(ws, cfg.run)
    run_dir = run.path
    data = read_data_split(run)
    predictor = Predictor.from_run(run, device=str(select_device(cfg.device)), tta=cfg.tta)
    classes = list(predictor.classes)
    split, ids, reason = choose_split(data, cfg.split)
    rows, dropped = select_rows(ws, ids, classes)
    decoded = decode_available(ws.cache_dir, rows, predictor.data_config.storage_size, f"decoding {split} images")
    check_strict(decoded.skipped, cfg.strict, "evaluate")
    by_id = {r.id: r for r in rows}
    dropped += [(by_id[s.image_id].label or "(unlabelled)", s.kind) for s in decoded.skipped]
    rows, x = decoded.rows, decoded.x
    skipped = skipped_by_class(dropped)
    if skipped:
        log.info("evaluation skips %d of the run's %d %s images: %s", len(dropped), len(ids), split, skipped)
    if not rows:
        raise DatasetError(
            f"none of the run's {len(ids)} {split} images can be evaluated now ({_skipped_text(skipped)}): "
            "they were removed, excluded, are missing on disk, or belong to classes the model does not know"
        )
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r.label] for r in rows if r.label is not None], dtype=np.int64)
    probs = predictor.predict_arrays(x, batch_size=cfg.batch_size)
    metrics = compute_metrics(y, probs, classes, top_k=cfg.top_k, n_bins=cfg.ece_bins)

    env = run.read_env_if_any()
    catalog_hash = ws.catalog.catalog_hash()
    doc: dict[str, Any] = {
        "run_id": run_dir.name,
        "model": read_meta(run.path)["model"],
        "split": split,
        "split_reason": reason,
        "tta_views": list(predictor.tta_views or []),
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "catalog_hash": catalog_hash,
        "catalog_changed_since_training": bool(env.get("catalog_hash")) and env.get("catalog_hash") != catalog_hash,
        "skipped": skipped,  # {class: {count, reason, reasons}}: held-out images that were not scored
        "skipped_images": skipped_dicts(decoded.skipped),
        # Set when the run carries a fitted temperature (calibration): the scored probabilities include it.
        "temperature": getattr(predictor, "temperature", None),
        # Set when the run carries per-class decision scales: predictions include them.
        "class_scales": None if predictor.class_scales is None else [float(v) for v in predictor.class_scales],
        **metrics,
    }
    metrics_path = run.metrics_path
    run.write_metrics(doc)
    predictions_path = run.predictions_path
    write_predictions(predictions_path, rows, y, probs, classes)

    mistakes = [
        Mistake(
            image=_thumbnail_source(rows[i], x[i], ws.cache_dir),
            true_label=classes[y[i]],
            predicted_label=classes[int(probs[i].argmax())],
            confidence=float(probs[i].max()),
            path=rows[i].path,
            image_id=rows[i].id,
        )
        for i in most_confident_mistakes(y, probs, cfg.mistakes)
    ]
    report_path = write_report(
        run.report_path,
        metrics,
        title=f"Evaluation of {run_dir.name}",
        info={
            "model": doc["model"],
            "split": split,
            "split_reason": reason,
            "images": len(rows),
            "evaluated": doc["evaluated_at"],
            "tta_views": doc.get("tta_views") or [],
        },
        history=run.read_history(),
        mistakes=mistakes,
        sections=sections or [],
        setup=training_setup(run),
        links={p.name: p.name for p in (predictions_path, metrics_path)},  # beside report.html
        label_url=label_url,
    )
    summary = {
        "split": split,
        "n": metrics["n"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_avg"]["f1"],
        "weighted_f1": metrics["weighted_avg"]["f1"],
        "ece": metrics["ece"],
        "nll": metrics["nll"],
        "top_k_accuracy": metrics["top_k_accuracy"],
        "catalog_hash": catalog_hash,
        "evaluated_at": doc["evaluated_at"],
    }
    record_in_catalog(ws, run_dir.name, run_dir, doc["model"], summary)
    log.info("evaluated %s on %d %s images: accuracy %.4f", run_dir.name, len(rows), split, metrics["accuracy"])
    return EvalResult(
        run_id=run_dir.name,
        run_dir=run_dir,
        split=split,
        split_reason=reason,
        n_images=len(rows),
        metrics=doc,
        metrics_path=metrics_path,
        report_path=report_path,
        predictions_path=predictions_path,
        skipped=skipped,
        skipped_images=decoded.skipped,
    )


def _skipped_text(skipped: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{cls}: {v['count']} {v['reason']}" for cls, v in skipped.items())
