"""`picsift.train.run(cfg)`: catalog -> arrays -> the model family's trainer -> a complete run folder."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from picsift.config import TrainConfig, to_jsonable
from picsift.data.available import (
    Decoded,
    SkippedImage,
    check_strict,
    decode_available,
    skipped_dicts,
    split_present,
)
from picsift.distributed import SINGLE, Dist, mark_relayed, process_group
from picsift.errors import ConfigError, DatasetError, DistributedError, Interrupted, PicsiftError
from picsift.models.artifact import save_artifact
from picsift.models.registry import DataConfig, ModelSpec, get_spec
from picsift.runs import RunFolder, environment, new_run
from picsift.store import ImageRow, Workspace
from picsift.train.auto import AUTO, AutoChoice, choose_model
from picsift.train.checkpoints import checkpoint_epochs
from picsift.train.data import TrainData, TrainedModel, encode_labels, split_rows
from picsift.train.resume import ResumePoint, find_resume_point, merge_settings, non_default_settings
from picsift.train.trainers import LogRow, check_settings, fit_on_data, trainer_for

log = logging.getLogger("picsift.train")


@dataclass
class RunResult:
    """What training produced: the run's id and folder, model, classes, the validation accuracy of the saved model
    (in [0, 1], as measured while training; None without validation images; not the history's best epoch unless
    that epoch was the one kept), duration (s), per-epoch history (of this session: a resumed run's earlier epochs
    are in its metrics.jsonl), skipped images, warnings, calibration, the run it resumed and the history epoch
    whose weights were saved (`kept_epoch`; 0: a transfer run's linear probe)."""

    run_id: str
    run_dir: Path
    model: str
    classes: list[str]
    val_acc: float | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)  # images missing on disk or no longer decoding
    warnings: list[str] = field(default_factory=list)  # class coverage problems (RunInputs.warnings)
    auto: AutoChoice | None = None  # what `--model auto` chose and why
    calibration: dict[str, Any] = field(default_factory=dict)  # the temperature fitted after training (run.json)
    resumed: dict[str, Any] | None = None  # --resume: {"run", "from_epoch", "same_folder"} (ResumePoint.to_dict)
    kept_epoch: int | None = None


def resolve_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    """The data config the model's family derives from its training images (trainers.TRAINERS)."""
    return trainer_for(spec).data_config(spec, cfg, rows)


def extra_training_rows(ws: Workspace, cfg: TrainConfig) -> list[ImageRow]:
    """Hook for accepted feedback images (deploy stage); empty unless --with-feedback."""
    if not cfg.with_feedback:
        return []
    try:
        from picsift.store.feedback_store import accepted_feedback_rows
    except ImportError as e:
        raise ConfigError("--with-feedback needs the deploy stage's feedback store") from e
    return list(accepted_feedback_rows(ws))


def coverage_warnings(
    classes: list[str], val_rows: list[ImageRow], held_out: list[ImageRow], auto_val: bool
) -> list[str]:
    """What the model will not learn or not be checked on: classes that have validation or test images but no
    training images (the model cannot predict them, so evaluation skips their images), and classes that have
    training images but no validation images (validation accuracy says nothing about them)."""
    unseen: dict[str, Counter[str]] = {}
    for r in held_out:
        if r.label is not None and r.label not in classes:
            unseen.setdefault(r.label, Counter())[r.split or "unsplit"] += 1
    out: list[str] = []
    if unseen:
        parts = [
            f"{c} ({', '.join(f'{n} {split}' for split, n in sorted(counts.items()))})"
            for c, counts in sorted(unseen.items())
        ]
        one = len(unseen) == 1
        out.append(
            f"{len(unseen)} class{'' if one else 'es'} {'has' if one else 'have'} no training images, so the "
            f"model cannot predict {'it' if one else 'them'}: {', '.join(parts)}; evaluation skips "
            f"{'its' if one else 'their'} images (add training images for {'it' if one else 'them'})"
        )
    if val_rows:
        with_val = {r.label for r in val_rows}
        no_val = [c for c in classes if c not in with_val]
        if no_val:
            why = " (too few training images for the automatic 10% validation split)" if auto_val else ""
            out.append(
                f"{len(no_val)} class{'' if len(no_val) == 1 else 'es'} {'has' if len(no_val) == 1 else 'have'} "
                f"training images but no validation images{why}: {', '.join(no_val)}; validation accuracy "
                "does not cover them"
            )
    return out


@dataclass(frozen=True)
class RunInputs:
    """What one training run reads from the workspace: its classes, the splits' rows and the data config.

    `test_rows` holds every labelled test image, also of classes without training images (evaluation reports
    those as skipped); `val_rows` only those of the model's classes (what validation during training scores),
    while `held_out_val_rows` holds every labelled validation image on disk, also of classes without training
    images, for `evaluate --split val` to score or report (data.json's "val_ids"); `skipped`: train/val images set aside because their file is
    missing or no longer decodes; `warnings`: class coverage problems (see `coverage_warnings`).
    """

    classes: list[str]
    train_rows: list[ImageRow]
    val_rows: list[ImageRow]
    test_rows: list[ImageRow]
    data_config: DataConfig
    skipped: list[SkippedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    held_out_val_rows: list[ImageRow] = field(default_factory=list)

    @classmethod
    def gather(cls, ws: Workspace, cfg: TrainConfig, spec: ModelSpec) -> RunInputs:
        """Raises DatasetError for fewer than 2 classes, MissingImagesError under `cfg.strict` when an image
        file is missing on disk."""
        train_rows, val_rows, test_rows = split_rows(ws, cfg.seed)
        auto_val = bool(val_rows) and not ws.catalog.training_images("val")
        train_rows = train_rows + extra_training_rows(ws, cfg)
        train_rows, gone_train = split_present(train_rows)
        val_rows, gone_val = split_present(val_rows)
        held_out_val = list(val_rows)  # also of classes without training images: evaluation reports those
        skipped = gone_train + gone_val  # test images are not read here: evaluation checks them
        check_strict(skipped, cfg.strict, "train")
        classes = sorted({r.label for r in train_rows if r.label is not None})
        if len(classes) < 2:
            raise DatasetError(f"training needs at least 2 classes with training images, found {classes}")
        warnings = coverage_warnings(classes, val_rows, val_rows + test_rows, auto_val)
        val_rows = [r for r in val_rows if r.label in classes]
        return cls(
            classes,
            train_rows,
            val_rows,
            test_rows,
            resolve_data_config(spec, cfg, train_rows),
            skipped,
            warnings,
            held_out_val,
        )

    @property
    def scored_test_rows(self) -> list[ImageRow]:
        """Test images of the model's classes (what evaluation can score)."""
        return [r for r in self.test_rows if r.label in self.classes]


def _record_inputs(
    run_dir: Path, cfg: TrainConfig, ws: Workspace, inputs: RunInputs, dist: Dist, asked: dict[str, Any] | None
) -> str:
    """config.json, env.json (seed, data version, packages, processes) and data.json (which images, which split);
    returns the catalog hash. config.json's `train` is what trained (for `--model auto`: the chosen model, with the
    budget the choice left); `asked` (model auto and the whole budget) records what the user asked for."""
    catalog_hash = ws.catalog.catalog_hash()
    run = RunFolder(run_dir)
    config: dict[str, Any] = {"train": to_jsonable(cfg), "data_config": inputs.data_config.to_dict()}
    if asked is not None:
        config["asked"] = asked
    run.write_config(config)
    run.write_env(
        {
            "seed": cfg.seed,
            "catalog_hash": catalog_hash,
            "workspace": str(ws.root),
            **environment(),
            "distributed": dist.to_dict(),
        }
    )
    run.write_data_split(
        {
            "classes": inputs.classes,
            "train_ids": [r.id for r in inputs.train_rows],
            # every held-out validation image, as for test: evaluation scores or reports each one
            "val_ids": [r.id for r in inputs.held_out_val_rows or inputs.val_rows],
            "test_ids": [r.id for r in inputs.test_rows],
            "skipped_images": skipped_dicts(inputs.skipped),
        },
    )
    return catalog_hash


def load_data(ws: Workspace, cfg: TrainConfig, spec: ModelSpec, inputs: RunInputs) -> tuple[TrainData, RunInputs]:
    """The split's images decoded (through the cache) at the storage size, resampled for the fast recipe.

    Images that no longer decode are set aside: the returned inputs have them in `skipped` and not in their
    split (classes recomputed). Raises MissingImagesError under `cfg.strict`, DatasetError when fewer than 2
    classes keep training images."""
    size = inputs.data_config.storage_size
    train = decode_available(ws.cache_dir, inputs.train_rows, size, "decoding train images")
    val = decode_available(ws.cache_dir, inputs.val_rows, size, "decoding val images")
    if train.skipped or val.skipped:
        check_strict(train.skipped + val.skipped, cfg.strict, "train")
        classes = sorted({r.label for r in train.rows if r.label is not None})
        if len(classes) < 2:
            raise DatasetError(f"training needs at least 2 classes with training images, found {classes}")
        keep = np.array([r.label in classes for r in val.rows], dtype=bool)
        val = Decoded([r for r, k in zip(val.rows, keep, strict=True) if k], val.x[keep], val.skipped)
        inputs = dataclasses.replace(
            inputs,
            classes=classes,
            train_rows=train.rows,
            val_rows=val.rows,
            skipped=inputs.skipped + train.skipped + val.skipped,
        )
    data = TrainData(
        classes=inputs.classes,
        data_config=inputs.data_config,
        x_train=train.x,
        y_train=encode_labels(train.rows, inputs.classes),
        x_val=val.x,
        y_val=encode_labels(val.rows, inputs.classes),
        train_ids=[r.id for r in train.rows],
        val_ids=[r.id for r in val.rows],
    )
    if cfg.balance != "none" and spec.family in ("fast", "transfer"):  # no sampler in these recipes: resample
        from picsift.train.balance import oversample

        data = oversample(data, cfg.balance, cfg.seed)
    if spec.family == "transfer" and (cfg.mixup or cfg.cutmix):
        log.warning("the transfer recipe does not mix batches: --mixup and --cutmix are ignored here")
    if spec.family == "fast" and (cfg.mixup or cfg.cutmix or cfg.random_erasing):
        log.warning(
            "the fast CNN recipe has its own batch augmentation: --mixup, --cutmix and --random-erasing "
            "apply to backbones trained with the standard loop and are ignored here"
        )
    return data, inputs


# (run folder, workspace, validation images, best validation accuracy) -> what run.json records about the
# temperature fitted after training (picsift.improve.calibration.calibrate_after_training; api.train_model passes it).
Calibrator = Callable[[Path, Workspace, int, "float | None"], dict[str, Any]]


@dataclass(frozen=True)
class RunPlan:
    """What rank 0 settles before training and every process trains by: the settings (`--model auto` resolved),
    the split (images that no longer decode already set aside), the run folder, the checkpoint to resume from,
    the automatic choice, the catalog hash and the run resumed."""

    cfg: TrainConfig
    model: str
    inputs: RunInputs
    run_dir: Path
    resume_from: Path | None
    choice: AutoChoice | None
    catalog_hash: str
    resumed: ResumePoint | None = None  # the run `--resume` named, when it did


@dataclass
class _Prepared:
    """Rank 0's side of a plan: the workspace, the run folder and the decoded data."""

    plan: RunPlan
    ws: Workspace
    run: RunFolder
    data: TrainData


def _resume(ws: Workspace, cfg: TrainConfig) -> tuple[TrainConfig, ResumePoint | None]:
    """With `cfg.resume`: the run to resume and the settings it continues with (its own, `picsift.train.resume`);
    else (cfg, None)."""
    if not cfg.resume:
        return cfg, None
    point = find_resume_point(ws, cfg.resume)
    return TrainConfig(**merge_settings(point.run, non_default_settings(cfg))).validate(), point


def _check_resumed_data(point: ResumePoint, ws: Workspace, inputs: RunInputs) -> RunInputs:
    """The classes must be the run's (its checkpoint's head has one output per class); a catalog changed since
    the run started is a warning (it continues on the current images)."""
    recorded = point.run.read_data_split().get("classes") if point.run.has_data_split() else None
    if recorded is not None and list(recorded) != inputs.classes:
        raise ConfigError(
            f"--resume {point.run.name}: the workspace's classes changed since the run started (run: "
            f"{', '.join(map(str, recorded))}; now: {', '.join(inputs.classes)}): train a new run without --resume"
        )
    if point.run.read_env_if_any().get("catalog_hash") not in (None, ws.catalog.catalog_hash()):
        warning = f"the catalog changed since run {point.run.name} started: it continues on the current images"
        return dataclasses.replace(inputs, warnings=[*inputs.warnings, warning])
    return inputs


def _prepare(cfg: TrainConfig, stack: contextlib.ExitStack, dist: Dist) -> _Prepared:
    """Rank 0's work before training: find the run to resume and take its settings, choose the model, gather and
    decode the split, create the run folder (left to `stack`, which removes it if the run fails before a
    checkpoint; a resumed unfinished run keeps its own) and record the run's inputs."""
    ws = Workspace.open(cfg.workspace)
    cfg, point = _resume(ws, cfg)  # a damaged checkpoint or a contradicting setting fails here, before any decoding
    spec = None if cfg.model == AUTO else get_spec(cfg.model)
    if spec is not None:
        check_settings(spec, cfg)  # a misspelt model_params key fails before any image is decoded
    choice = None
    asked = {"model": cfg.model, "time_budget_min": cfg.time_budget_min}
    if spec is None:
        choice = choose_model(ws, cfg)
        cfg = choice.config
        log.info("train: %s", choice.message)
        spec = get_spec(cfg.model)
        check_settings(spec, cfg)
    inputs = RunInputs.gather(ws, cfg, spec)
    if point is not None:
        inputs = _check_resumed_data(point, ws, inputs)
    if point is not None and point.in_place:
        run = point.run  # an unfinished run continues in its own folder, from its checkpoint's epoch
        if point.epochs_done is not None:
            run.trim_history(point.epochs_done)
    else:
        run = stack.enter_context(new_run(ws, spec.name, cfg.run_name))
    data, inputs = load_data(ws, cfg, spec, inputs)
    for line in inputs.warnings:
        log.info("train: %s", line)
    catalog_hash = _record_inputs(run.path, cfg, ws, inputs, dist, asked if choice is not None else None)
    resume_from = point.checkpoint if point is not None else None
    plan = RunPlan(cfg, spec.name, inputs, run.path, resume_from, choice, catalog_hash, point)
    return _Prepared(plan, ws, run, data)


def _discard(row: dict[str, Any]) -> None:
    """The history of a process other than rank 0: rank 0 writes the run's."""


def _only_on_rank_0() -> RunResult:
    raise AssertionError("runs on rank 0 only")  # Dist.share never calls it on another rank


def run(cfg: TrainConfig, *, calibrator: Calibrator | None = None) -> RunResult:
    """Train one model on the workspace's labelled data and write a complete, reproducible run folder.

    With `cfg.model == "auto"` the model is chosen from the data first (`picsift.train.auto`); with
    `cfg.calibrate` and a `calibrator` (fitting belongs to the improve stage, so the caller brings it:
    `picsift.api.train_model` does), a temperature is fitted on validation before the run is recorded.

    Under torchrun (`picsift.distributed`) every process calls this: rank 0 plans the run, creates its one
    folder and records it; every process trains its shard of the data (the classical family trains on rank 0
    alone); every process returns rank 0's RunResult, and raises rank 0's error when it fails. Ctrl+C raises
    Interrupted, whose note says what the run kept (`interrupted_note`)."""
    cfg = cfg.validate()
    mine: list[_Prepared] = []
    try:
        return _run(cfg, calibrator, mine)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        raise Interrupted(interrupted_note(cfg, mine[0] if mine else None)) from None


def interrupted_note(cfg: TrainConfig, prepared: _Prepared | None) -> str:
    """What a run stopped by Ctrl+C left, in one line: the run kept at epoch N with how to resume it, or that
    nothing was kept (it stopped before its first checkpoint, and its folder was removed)."""
    if prepared is None:
        if cfg.resume:
            return f"stopped before training started: run {cfg.resume} is as it was"
        return "stopped before training started: nothing was written"
    run = prepared.run
    if not run.checkpoint_path.is_file():
        return "stopped before the run's first checkpoint: nothing was kept"
    epochs = checkpoint_epochs(run.checkpoint_path)
    at = f" at epoch {epochs}" if epochs is not None else ""
    return f"run {run.name} kept{at} (resume with picsift train -w {prepared.ws.root} --resume {run.name})"


def _run(cfg: TrainConfig, calibrator: Calibrator | None, mine: list[_Prepared]) -> RunResult:
    """`run`'s body; `mine` receives rank 0's prepared run, for the note of an interrupted run."""
    with process_group(cfg.device) as dist, contextlib.ExitStack() as stack:

        def prepare() -> RunPlan:
            mine.append(_prepare(cfg, stack, dist))
            return mine[0].plan

        plan = dist.share(prepare)
        spec = get_spec(plan.model)
        trainer = trainer_for(spec)
        log_row: LogRow = _discard
        if mine:
            ws, data, log_row = mine[0].ws, mine[0].data, mine[0].run.history_log()
        elif not trainer.distributed:
            return dist.share(_only_on_rank_0)  # rank 0 trains alone; wait for its result
        else:
            ws = Workspace.open(plan.cfg.workspace)
            data, _ = load_data(ws, plan.cfg, spec, plan.inputs)  # rank 0 decoded every image: the cache serves them
        t0 = time.perf_counter()
        try:
            trained = fit_on_data(
                spec,
                data,
                plan.cfg,
                run_dir=plan.run_dir,
                log_row=log_row,
                ws=ws,
                resume_from=plan.resume_from,
                dist=dist if trainer.distributed else SINGLE,
            )
        except PicsiftError as e:
            # Every process runs the trainer's checks on the same settings and data (a checkpoint that already
            # finished, a setting out of range): rank 0 raises the same error and reports it.
            if not dist.is_main and not isinstance(e, DistributedError):
                mark_relayed(e)
            raise
        seconds = time.perf_counter() - t0
        return dist.share(lambda: _finish(plan, mine[0], trained, seconds, calibrator, dist))


def _finish(
    plan: RunPlan, prepared: _Prepared, trained: TrainedModel, seconds: float, calibrator: Calibrator | None, dist: Dist
) -> RunResult:
    """Rank 0's work after training: save the model, calibrate it, write run.json and record the run."""
    cfg, inputs, run_dir, ws = plan.cfg, plan.inputs, plan.run_dir, prepared.ws
    spec = get_spec(plan.model)
    save_artifact(
        run_dir,
        model=trained.model,
        model_name=spec.name,
        family=spec.family,
        classes=inputs.classes,
        data_config=trained.data_config,
        model_kwargs=trained.model_kwargs,
        extra=trained.extra,
        write_model=trainer_for(spec).write_model,
    )
    val_acc = trained.val_acc  # the saved model's, not the best of the history (an epoch may not have been kept)
    n_val = len(inputs.val_rows)
    if not cfg.calibrate:
        calibration: dict[str, Any] = {"skipped": "off"}
    elif calibrator is None:
        calibration = {"skipped": "no calibrator given (picsift.api.train_model calibrates)"}
    else:
        calibration = calibrator(run_dir, ws, n_val, val_acc)
    choice, resumed = plan.choice, plan.resumed
    summary = {
        "run_id": run_dir.name,
        "model": spec.name,
        "family": spec.family,
        "classes": inputs.classes,
        "n_train": len(inputs.train_rows),
        "n_val": len(inputs.val_rows),
        "n_test": len(inputs.scored_test_rows),
        "n_skipped": len(inputs.skipped),
        "warnings": inputs.warnings,
        "val_acc": val_acc,
        "kept_epoch": trained.kept_epoch,
        "best_val_acc": val_acc,  # the saved model's validation accuracy, as val_acc (the name older runs read)
        "train_seconds": seconds,
        "epochs": len(trained.history) + ((resumed.epochs_done or 0) if resumed and resumed.in_place else 0),
        "catalog_hash": plan.catalog_hash,
        "seed": cfg.seed,
        "auto": choice.to_dict() if choice else None,
        "resumed": resumed.to_dict() if resumed else None,
        "calibration": calibration,
        "distributed": {
            **dist.to_dict(),
            **({"trained_by": "every process" if trainer_for(spec).distributed else "rank 0"} if dist.enabled else {}),
        },
        "trainer": trained.extra,
    }
    prepared.run.write_record(summary)
    ws.catalog.record_run(
        run_dir.name, str(run_dir), spec.name, plan.catalog_hash, {"best_val_acc": val_acc, "val_acc": val_acc}
    )
    return RunResult(
        run_dir.name,
        run_dir,
        spec.name,
        inputs.classes,
        val_acc,
        seconds,
        trained.history,
        skipped=inputs.skipped,
        warnings=inputs.warnings,
        auto=choice,
        calibration=calibration,
        resumed=resumed.to_dict() if resumed else None,
        kept_epoch=trained.kept_epoch,
    )
