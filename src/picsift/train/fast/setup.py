"""Setting up a fast-recipe run: check the data, plan the network and batch for the time budget, build the
augmenter, optimisers and schedules, and restore a checkpoint when resuming.

In a run of several processes (torchrun) every process sets up the same run: the network planned from the
slowest process's measured throughput times the processes, the batch per process (`--batch-size`, or the
recipe's batch for one process split over them), and optimisers sized for the global batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from picsift.config import TrainConfig
from picsift.device import seed_everything
from picsift.distributed import SINGLE, Dist, per_process_batch
from picsift.errors import ConfigError
from picsift.models.fastcnn import FastCNN
from picsift.models.registry import DataConfig, ModelSpec, create_model
from picsift.train.checkpoints import load_checkpoint
from picsift.train.data import TrainData
from picsift.train.fast.augment import BatchAugmenter
from picsift.train.fast.evaluate import to_input
from picsift.train.fast.freeze import Stages, freeze_stages
from picsift.train.fast.optim import OrthoMomentum, WeightAverage, make_optimizers
from picsift.train.fast.prune import LossPruner, pruner_from
from picsift.train.fast.recipe import FastRecipe
from picsift.train.fast.resize import resize_stages
from picsift.train.fast.runtime import images_per_second, maybe_compile
from picsift.train.fast.sizing import (
    budget_batch_size,
    cpu_batch_size,
    default_batch_size,
    default_epochs,
    model_kwargs_for,
    probe_batch,
    widen_for_budget,
)

log = logging.getLogger("picsift.train")
RECIPE_LABEL_SMOOTHING = 0.2
WHITENING_IMAGES = 5000  # whitening filters come from (un-augmented) training patches; this many images are plenty
BUDGET_TRAINING_SHARE = 0.85  # of a time budget, the share the throughput probe plans for training steps


@dataclass
class FastSetup:
    """A fast-recipe run ready to train: the network on its device, its batches, optimisers and schedules, and
    where a resumed run stands (`start_epoch`, `step`, `used_s`: seconds its earlier sessions used)."""

    model: FastCNN
    model_kwargs: dict[str, Any]  # the network's constructor arguments, saved with its weights
    amp: bool  # bf16 autocast
    aug: BatchAugmenter
    sgd: torch.optim.SGD
    ortho: OrthoMomentum
    averager: WeightAverage | None
    train_step: Callable[[torch.Tensor, bool], torch.Tensor]  # the (maybe compiled) forward: batch, whiten bias grad;
    # in DistributedDataParallel under torchrun
    criterion: nn.CrossEntropyLoss  # per-example losses (reduction none)
    label_smoothing: float
    resize: Stages  # progressive resizing (resize.py)
    freezing: Stages  # progressive freezing (freeze.py)
    pruner: LossPruner | None  # data pruning (prune.py)
    recipe: FastRecipe
    data_config: DataConfig
    device: torch.device
    epochs: int  # planned; a budgeted run plans 10,000 and stops on time
    budget_s: float | None  # the whole call's time budget in seconds
    start_epoch: int = 0
    step: int = 0
    used_s: float = 0.0
    dist: Dist = SINGLE


@dataclass(frozen=True)
class _Network:
    model: FastCNN
    kwargs: dict[str, Any]
    amp: bool
    images_in_budget: float | None  # training images the budget holds, by the throughput probe (budgeted runs)


def set_up(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    recipe: FastRecipe,
    resume_from: Path | None,
    dist: Dist = SINGLE,
) -> FastSetup:
    """Everything fit_fast needs before its first step. Raises ConfigError for data the recipe cannot train on
    (none, fewer images than processes, or not stored at the input size) and for a checkpoint that already
    finished the epochs asked for."""
    generator = seed_everything(cfg.seed)
    _check_data(data, dist.world_size)
    dc, n = data.data_config, len(data.y_train)
    images = torch.from_numpy(data.x_train).permute(0, 3, 1, 2).to(device)
    labels = torch.from_numpy(data.y_train).to(device)
    sample = images[torch.randperm(n, generator=generator)[:WHITENING_IMAGES].to(device)]
    whiten_from = to_input(sample, dc, channels_last=False).float().cpu()
    budget_s = cfg.time_budget_min * 60.0 if cfg.time_budget_min else None
    ckpt = load_checkpoint(resume_from, map_location=device) if resume_from is not None else None
    net = _plan_network(spec, data, cfg, device, recipe, whiten_from, budget_s, ckpt, dist)
    aug = BatchAugmenter(
        images,
        labels,
        dc.mean,
        dc.std,
        batch_size=_batch_size(cfg, device, n, ckpt, net.images_in_budget, budget_s, dist.world_size),
        generator=generator,
        translate=recipe.translate if recipe.translate is not None else 2 if dc.input_size >= 24 else 1,
        jitter=recipe.jitter,
        channels_last=cfg.channels_last,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    global_batch = aug.batch_size * dist.world_size
    sgd, ortho = make_optimizers(net.model, recipe, global_batch, cfg.lr / recipe.filter_lr if cfg.lr else 1.0)
    epochs = cfg.epochs or (10_000 if budget_s else default_epochs(aug.steps_per_epoch()))
    averager = WeightAverage(net.model) if recipe.lookahead else None
    start_epoch, step, used_s = _restore(ckpt, net.model, sgd, ortho, averager, epochs)
    freezing = freeze_stages(recipe, len(net.model.blocks))
    # Frozen blocks leave parameters without a gradient, which DistributedDataParallel must then look for each step
    # (the whitening bias keeps its gradient in several processes, at a learning rate of 0 once it stops: fit.py).
    wrapped = dist.wrap(net.model, find_unused_parameters=bool(freezing))
    train_step = maybe_compile(wrapped, device, recipe.compile, budget_s)
    smoothing = RECIPE_LABEL_SMOOTHING if cfg.label_smoothing is None else cfg.label_smoothing
    pruner = pruner_from(recipe, n, budgeted=budget_s is not None, generator=generator, device=device, dist=dist)
    if pruner is not None and ckpt is not None and ckpt.get("pruner") is not None:
        pruner.load_state_dict(ckpt["pruner"])
    return FastSetup(
        model=net.model,
        model_kwargs=net.kwargs,
        amp=net.amp,
        aug=aug,
        sgd=sgd,
        ortho=ortho,
        averager=averager,
        train_step=train_step,
        criterion=nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none"),
        label_smoothing=smoothing,
        resize=resize_stages(dc.input_size, recipe, budgeted=budget_s is not None),
        freezing=freezing,
        pruner=pruner,
        recipe=recipe,
        data_config=dc,
        device=device,
        epochs=epochs,
        budget_s=budget_s,
        start_epoch=start_epoch,
        step=step,
        used_s=used_s,
        dist=dist,
    )


def _check_data(data: TrainData, world_size: int = 1) -> None:
    if len(data.y_train) == 0:
        raise ConfigError("fastcnn: no training images")
    if len(data.y_train) < world_size:
        raise ConfigError(
            f"fastcnn: {len(data.y_train)} training images cannot be shared by {world_size} processes: start fewer"
        )
    if data.x_train.shape[1] != data.data_config.input_size:
        raise ConfigError(
            f"fastcnn expects images stored at its input size {data.data_config.input_size} (crop_pct=1.0), "
            f"got {data.x_train.shape[1]}"
        )


def _build_model(
    spec: ModelSpec,
    num_classes: int,
    kwargs: dict[str, Any],
    whiten_from: torch.Tensor,
    device: torch.device,
    channels_last: bool,
    amp: bool,
) -> tuple[FastCNN, bool]:
    """The fast CNN with its whitening filters set from `whiten_from`, on the device; returns it and whether to
    train in bf16 (not on data whose patches have empty directions)."""
    model: FastCNN = create_model(spec.name, num_classes, **kwargs)
    degenerate = model.init_whitening(whiten_from)
    if degenerate and amp:
        # Grey or upscaled images leave patch directions empty; bf16 rounding then becomes signal that
        # near-constant channels' BatchNorm amplifies (measured: 1000x gradients on grey digits). Such
        # data are small and cheap, so they train in fp32.
        log.info("fastcnn: %d empty patch directions (grey or upscaled images): training in fp32", degenerate)
        amp = False
    model.to(device)
    return (model.to(memory_format=torch.channels_last) if channels_last else model), amp


def _plan_network(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    recipe: FastRecipe,
    whiten_from: torch.Tensor,
    budget_s: float | None,
    ckpt: dict[str, Any] | None,
    dist: Dist = SINGLE,
) -> _Network:
    """The network to train: sized from the data (or as the checkpoint was), then, under a time budget, widened
    when a throughput probe finds that the budget holds many passes over a large set (sizing.widen_for_budget)."""
    n, dc, num_classes = len(data.y_train), data.data_config, len(data.classes)
    kwargs = ckpt["model_kwargs"] if ckpt is not None else model_kwargs_for(n, dc.input_size, num_classes, recipe)
    model, amp = _build_model(spec, num_classes, kwargs, whiten_from, device, cfg.channels_last, cfg.amp and recipe.amp)
    if not budget_s or ckpt is not None:
        return _Network(model, kwargs, amp, None)

    images = _images_in_budget(model, amp, cfg.channels_last, device, dc.input_size, n, budget_s, dist)
    wider = widen_for_budget(kwargs, n, images / n, recipe)
    if wider is kwargs:
        return _Network(model, kwargs, amp, images)
    log.info("fastcnn: the budget holds ~%.0f passes over the data: widths %s", images / n, wider["widths"])
    model, amp = _build_model(spec, num_classes, wider, whiten_from, device, cfg.channels_last, amp)
    images = _images_in_budget(model, amp, cfg.channels_last, device, dc.input_size, n, budget_s, dist)
    return _Network(model, wider, amp, images)


def _images_in_budget(
    model: FastCNN,
    amp: bool,
    channels_last: bool,
    device: torch.device,
    input_size: int,
    n: int,
    budget_s: float,
    dist: Dist = SINGLE,
) -> float:
    """Training images the budget holds: the probed throughput (images per second) x the budget's training share;
    in several processes the slowest one's throughput times their number (every process plans the same run)."""
    batch = probe_batch(device, n)
    speed = images_per_second(model, input_size, device, amp, channels_last, batch=batch)
    speed = dist.agree_min(speed) * dist.world_size
    return speed * budget_s * BUDGET_TRAINING_SHARE


def _batch_size(
    cfg: TrainConfig,
    device: torch.device,
    n: int,
    ckpt: dict[str, Any] | None,
    images_in_budget: float | None,
    budget_s: float | None,
    world_size: int = 1,
) -> int:
    """The batch per process: the checkpoint's global batch when resuming, else cfg.batch_size (per process),
    else the device's default for n images, made smaller under a budget that holds few images
    (sizing.budget_batch_size); a global batch is split over the `world_size` processes."""
    if ckpt is not None:
        return per_process_batch(int(ckpt["batch_size"]) * int(ckpt.get("world_size", 1)), world_size)
    if cfg.batch_size:
        return cfg.batch_size
    batch_size = cpu_batch_size(n) if device.type == "cpu" else default_batch_size(n)
    if images_in_budget:
        batch_size = budget_batch_size(n, images_in_budget, batch_size)
        log.info("fastcnn: ~%.0f images in the %.0fs budget, so batch %d", images_in_budget, budget_s, batch_size)
    return per_process_batch(batch_size, world_size)


def _restore(
    ckpt: dict[str, Any] | None,
    model: FastCNN,
    sgd: torch.optim.SGD,
    ortho: OrthoMomentum,
    averager: WeightAverage | None,
    epochs: int,
) -> tuple[int, int, float]:
    """Load a checkpoint's weights and optimiser states; returns (first epoch to train, steps done, seconds
    used), (0, 0, 0.0) without one."""
    if ckpt is None:
        return 0, 0, 0.0
    model.load_state_dict(ckpt["model"])
    sgd.load_state_dict(ckpt["sgd"])
    ortho.load_state_dict(ckpt["ortho"])
    if averager is not None and ckpt.get("slow") is not None:
        averager.slow = ckpt["slow"]
    start_epoch = ckpt["epoch"] + 1
    if start_epoch >= epochs:
        raise ConfigError(f"checkpoint already finished {start_epoch} epochs; ask for more with --epochs")
    return start_epoch, ckpt["step"], ckpt["used_s"]
