"""`picsift.train.run(cfg)`: catalog -> arrays -> the model family's trainer -> a complete run folder."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.config import TrainConfig, to_jsonable
from picsift.errors import ConfigError, DatasetError
from picsift.models.artifact import save_artifact
from picsift.models.registry import DataConfig, ModelSpec, get_spec
from picsift.store import ImageRow, Workspace
from picsift.train.data import TrainData, encode_labels, load_arrays, split_rows
from picsift.train.runs import MetricsLog, environment, new_run_dir, removed_on_error, resolve_run, write_json
from picsift.train.trainers import check_settings, fit_on_data, trainer_for

log = logging.getLogger("picsift.train")


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    model: str
    classes: list[str]
    val_acc: float | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    """The data config the model's family derives from its training images (trainers.TRAINERS)."""
    return trainer_for(spec).data_config(spec, cfg, rows)


def extra_training_rows(ws: Workspace, cfg: TrainConfig) -> list[ImageRow]:
    """Hook for accepted feedback images (deploy stage); empty unless --with-feedback."""
    if not cfg.with_feedback:
        return []
    try:
        from picsift.deploy.feedback import accepted_feedback_rows  # type: ignore[attr-defined]
    except ImportError as e:
        raise ConfigError("--with-feedback needs the deploy stage's feedback store") from e
    return list(accepted_feedback_rows(ws))


@dataclass(frozen=True)
class RunInputs:
    """What one training run reads from the workspace: its classes, the splits' rows and the data config."""

    classes: list[str]
    train_rows: list[ImageRow]
    val_rows: list[ImageRow]
    test_rows: list[ImageRow]
    data_config: DataConfig

    @classmethod
    def gather(cls, ws: Workspace, cfg: TrainConfig, spec: ModelSpec) -> RunInputs:
        train_rows, val_rows, test_rows = split_rows(ws, cfg.seed)
        train_rows = train_rows + extra_training_rows(ws, cfg)
        classes = sorted({r.label for r in train_rows if r.label is not None})
        if len(classes) < 2:
            raise DatasetError(f"training needs at least 2 classes with training images, found {classes}")
        val_rows = [r for r in val_rows if r.label in classes]
        return cls(classes, train_rows, val_rows, test_rows, resolve_data_config(spec, cfg, train_rows))


def _record_inputs(run_dir: Path, cfg: TrainConfig, ws: Workspace, inputs: RunInputs) -> str:
    """config.json, env.json (seed, data version, packages) and data.json (which images, which split); returns
    the catalog hash."""
    catalog_hash = ws.catalog.catalog_hash()
    write_json(run_dir / "config.json", {"train": to_jsonable(cfg), "data_config": inputs.data_config.to_dict()})
    write_json(
        run_dir / "env.json",
        {"seed": cfg.seed, "catalog_hash": catalog_hash, "workspace": str(ws.root), **environment()},
    )
    write_json(
        run_dir / "data.json",
        {
            "classes": inputs.classes,
            "train_ids": [r.id for r in inputs.train_rows],
            "val_ids": [r.id for r in inputs.val_rows],
            "test_ids": [r.id for r in inputs.test_rows if r.label in inputs.classes],
        },
    )
    return catalog_hash


def load_data(ws: Workspace, cfg: TrainConfig, spec: ModelSpec, inputs: RunInputs) -> TrainData:
    """The split's images decoded (through the cache) at the storage size, resampled for the fast recipe."""
    size = inputs.data_config.storage_size
    data = TrainData(
        classes=inputs.classes,
        data_config=inputs.data_config,
        x_train=load_arrays(ws, inputs.train_rows, size, "decoding train images"),
        y_train=encode_labels(inputs.train_rows, inputs.classes),
        x_val=load_arrays(ws, inputs.val_rows, size, "decoding val images"),
        y_val=encode_labels(inputs.val_rows, inputs.classes),
        train_ids=[r.id for r in inputs.train_rows],
        val_ids=[r.id for r in inputs.val_rows],
    )
    if cfg.balance != "none" and spec.family == "fast":  # its recipe draws its own batches: resample the data
        from picsift.improve.balance import oversample

        data = oversample(data, cfg.balance, cfg.seed)
    if spec.family == "fast" and (cfg.mixup or cfg.cutmix or cfg.random_erasing):
        log.warning(
            "the fast CNN recipe has its own batch augmentation: --mixup, --cutmix and --random-erasing "
            "apply to backbones trained with the standard loop and are ignored here"
        )
    return data


def run(cfg: TrainConfig) -> RunResult:
    """Train one model on the workspace's labelled data and write a complete, reproducible run folder."""
    cfg = cfg.validate()
    spec = get_spec(cfg.model)
    check_settings(spec, cfg)  # a misspelt model_params key fails before any image is decoded
    ws = Workspace.open(cfg.workspace)
    inputs = RunInputs.gather(ws, cfg, spec)
    resume_from = None
    if cfg.resume:
        resume_from = resolve_run(ws, cfg.resume) / "checkpoint.pt"
        if not resume_from.exists():
            raise ConfigError(f"--resume {cfg.resume}: that run has no checkpoint.pt")
    run_dir = new_run_dir(ws, spec.name, cfg.run_name)
    with removed_on_error(run_dir):
        catalog_hash = _record_inputs(run_dir, cfg, ws, inputs)
        data = load_data(ws, cfg, spec, inputs)
        t0 = time.perf_counter()
        metrics = MetricsLog(run_dir / "metrics.jsonl")
        trained = fit_on_data(spec, data, cfg, run_dir=run_dir, log_row=metrics, ws=ws, resume_from=resume_from)
    seconds = time.perf_counter() - t0
    save_artifact(
        run_dir,
        model=trained.model,
        model_name=spec.name,
        family=spec.family,
        classes=inputs.classes,
        data_config=trained.data_config,
        model_kwargs=trained.model_kwargs,
        extra=trained.extra,
    )
    if cfg.tta:  # choose test-time views on validation data now -> tta.json
        from picsift.improve.tta import choose_for_run

        choose_for_run(run_dir, ws)
    val_accs = [h["val_acc"] for h in trained.history if h.get("val_acc") is not None]
    val_acc = trained.final_val_acc if trained.final_val_acc is not None else max(val_accs) if val_accs else None
    summary = {
        "run_id": run_dir.name,
        "model": spec.name,
        "family": spec.family,
        "classes": inputs.classes,
        "n_train": len(inputs.train_rows),
        "n_val": len(inputs.val_rows),
        "best_val_acc": val_acc,
        "train_seconds": seconds,
        "epochs": len(trained.history),
        "catalog_hash": catalog_hash,
        "seed": cfg.seed,
    }
    write_json(run_dir / "run.json", summary)
    ws.catalog.record_run(run_dir.name, str(run_dir), spec.name, catalog_hash, {"best_val_acc": val_acc})
    return RunResult(run_dir.name, run_dir, spec.name, inputs.classes, val_acc, seconds, trained.history)
