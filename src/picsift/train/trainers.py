"""Trainers by model family: one table looked up by `ModelSpec.family`, used by `train.run` and by tuning.

Each family says how it checks its settings (`TrainConfig.model_params`, before any image is decoded), how it
derives its data config from the images, and how it fits on decoded arrays. `fit_on_data` is the one entry for
training on data already loaded (`pipeline.load_data`), so a caller that decodes once and trains many times
(`improve.tune`) trains exactly as a run does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picsift.config import TrainConfig
from picsift.distributed import SINGLE, Dist
from picsift.errors import ConfigError
from picsift.models.registry import DataConfig, ModelSpec
from picsift.store import ImageRow, Workspace
from picsift.train.data import TrainData, TrainedModel
from picsift.train.fast import fit_fast
from picsift.train.fast import resolve_data_config as fast_data_config
from picsift.train.fast.recipe import FastRecipe
from picsift.train.standard_recipe import check_model_params
from picsift.train.transfer import TransferRecipe
from picsift.train.transfer import resolve_data_config as transfer_data_config

LogRow = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class FitContext:
    """Where a fit writes and reports: the run folder (checkpoints, snapshots), the callback that receives one
    history row per epoch, the workspace (feature caches), the checkpoint to resume from, if any, and the
    processes training together (`picsift.distributed`; one by default)."""

    run_dir: Path
    log_row: LogRow
    ws: Workspace
    resume_from: Path | None = None
    dist: Dist = SINGLE


@dataclass(frozen=True)
class Trainer:
    """How one model family trains."""

    check: Callable[[ModelSpec, TrainConfig], None]  # raises ConfigError for settings the family does not take
    data_config: Callable[[ModelSpec, TrainConfig, list[ImageRow]], DataConfig]  # from the training images
    fit: Callable[[ModelSpec, TrainData, TrainConfig, FitContext], TrainedModel]
    # How its model is stored in the run's artifact: None for torch modules (safetensors), else a writer
    # (model, artifact folder) -> extra model.json keys (picsift.models.artifact.ModelWriter).
    write_model: Callable[[Any, Path], dict[str, Any]] | None = None
    # Whether it trains in several processes under torchrun (sharded data, DistributedDataParallel); False: rank 0
    # trains alone while the others wait for its result.
    distributed: bool = True


def _check_fast(spec: ModelSpec, cfg: TrainConfig) -> None:
    FastRecipe.from_params(cfg.model_params)


def _fit_fast(spec: ModelSpec, data: TrainData, cfg: TrainConfig, ctx: FitContext) -> TrainedModel:
    device = ctx.dist.train_device(cfg.device)
    return fit_fast(spec, data, cfg, device, ctx.log_row, ctx.run_dir, ctx.resume_from, dist=ctx.dist)


def _check_standard(spec: ModelSpec, cfg: TrainConfig) -> None:
    check_model_params(spec.name, cfg.model_params)


def _standard_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    return dataclasses.replace(spec.data_config, input_size=cfg.image_size) if cfg.image_size else spec.data_config


def _fit_standard(spec: ModelSpec, data: TrainData, cfg: TrainConfig, ctx: FitContext) -> TrainedModel:
    from picsift.train.loop import fit_standard  # imports torchvision (over a second): only when a backbone trains

    device = ctx.dist.train_device(cfg.device)
    return fit_standard(spec, data, cfg, device, ctx.log_row, ctx.run_dir, ctx.resume_from, dist=ctx.dist)


def _check_transfer(spec: ModelSpec, cfg: TrainConfig) -> None:
    from picsift.models.pretrained import locate_weights

    TransferRecipe.from_params(cfg.model_params)
    locate_weights(spec.name, cfg.weights)  # no weights: WeightsNotAvailableError saying how to get them, up front


def _fit_transfer(spec: ModelSpec, data: TrainData, cfg: TrainConfig, ctx: FitContext) -> TrainedModel:
    from picsift.train.transfer.fit import fit_transfer  # torchvision transforms: only when a transfer model trains

    return fit_transfer(spec, data, cfg, ctx.ws, ctx.log_row, dist=ctx.dist)


# The classical family imports scikit-learn (over a second) only when a classical model is asked for.
def _check_classical(spec: ModelSpec, cfg: TrainConfig) -> None:
    from picsift.classical.estimators import make_classifier

    make_classifier(spec.name, cfg.model_params, cfg.seed)  # refuses unknown hyper-parameters with a suggestion


def _classical_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    from picsift.train.classical import resolve_data_config

    return resolve_data_config(spec, cfg, rows)


def _fit_classical(spec: ModelSpec, data: TrainData, cfg: TrainConfig, ctx: FitContext) -> TrainedModel:
    from picsift.train.classical import fit_classical

    return fit_classical(spec, data, cfg, ctx.ws, ctx.log_row)


def _write_estimator(model: Any, out_dir: Path) -> dict[str, Any]:
    from picsift.train.classical import write_estimator

    return write_estimator(model, out_dir)


STANDARD = Trainer(check=_check_standard, data_config=_standard_data_config, fit=_fit_standard)
TRAINERS: dict[str, Trainer] = {
    "fast": Trainer(check=_check_fast, data_config=fast_data_config, fit=_fit_fast),
    "transfer": Trainer(check=_check_transfer, data_config=transfer_data_config, fit=_fit_transfer),
    "torchvision": STANDARD,
    "timm": STANDARD,
    # Classical models fit in seconds to minutes on one CPU (scikit-learn) and their features are cached in the
    # workspace: rank 0 trains them alone.
    "classical": Trainer(
        check=_check_classical,
        data_config=_classical_data_config,
        fit=_fit_classical,
        write_model=_write_estimator,
        distributed=False,
    ),
}


def trainer_for(spec: ModelSpec) -> Trainer:
    """The trainer of the model's family; ConfigError for a family without one."""
    trainer = TRAINERS.get(spec.family)
    if trainer is None:
        raise ConfigError(f"model {spec.name!r}: no trainer for family {spec.family!r} (trainers: {sorted(TRAINERS)})")
    return trainer


def check_settings(spec: ModelSpec, cfg: TrainConfig) -> None:
    """Raise ConfigError for a `cfg.model_params` key or value the model's family does not take (the message
    names the key and suggests the nearest known one). Cheap: call it before decoding images."""
    trainer_for(spec).check(spec, cfg)


def fit_on_data(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    *,
    run_dir: Path,
    log_row: LogRow,
    ws: Workspace,
    resume_from: Path | None = None,
    dist: Dist = SINGLE,
) -> TrainedModel:
    """Train model `spec` on decoded arrays (`data`, as `pipeline.load_data` gives them) with the trainer of its
    family: one history row per epoch to `log_row`, checkpoints and snapshots into `run_dir`, continuing from the
    checkpoint `resume_from` if given. Returns the trained model with its constructor arguments, data config,
    history and the trainer's `extra` facts; the caller saves it. With `dist` (a process of a torchrun run), the
    families that train in several processes take their shard of `data`; only rank 0 writes into `run_dir`.
    Raises ConfigError for settings the family does not take."""
    return trainer_for(spec).fit(spec, data, cfg, FitContext(run_dir, log_row, ws, resume_from, dist))
