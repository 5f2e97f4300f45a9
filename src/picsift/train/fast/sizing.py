"""How the fast recipe sizes itself: input size, widths, batch size, epochs and monitoring, from the data
and the time budget. Pure functions of counts and sizes, so each rule is testable on its own."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.models.fastcnn import DEFAULT_WIDTHS
from picsift.models.registry import DataConfig, ModelSpec
from picsift.store import ImageRow
from picsift.train.fast.recipe import FastRecipe
from picsift.train.fast.resize import MIN_SIZE


def resolve_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    """Input size from the data: the median shorter side, rounded to a multiple of 8, kept in
    [16, 64] (in [16, 48] below 2,000 images, where more pixels mostly cost time); cfg.image_size wins."""
    base = dataclasses.replace(spec.data_config, crop_pct=1.0)
    if cfg.image_size:
        if cfg.image_size < MIN_SIZE:
            raise ConfigError(f"--image-size {cfg.image_size} is too small for fastcnn: use at least {MIN_SIZE}")
        return base.with_size(cfg.image_size)
    sides = [min(r.width, r.height) for r in rows if r.width and r.height] or [32]
    median = float(np.median(sides))
    cap = 48 if len(rows) < 2000 else 64
    size = int(min(cap, max(MIN_SIZE, 8 * round(median / 8))))
    return base.with_size(size)


def model_kwargs_for(n_train: int, input_size: int, num_classes: int, recipe: FastRecipe) -> dict[str, Any]:
    """FastCNN keyword arguments: the recipe's network settings, and widths from the dataset size unless the recipe
    gives them: the record widths (64/256/256) from ~10k images up, half below 2k (less capacity to overfit, 4x
    fewer FLOPs); the head grows for many classes."""
    if recipe.widths is not None:
        widths = list(recipe.widths)
    else:
        scale = 1.0 if n_train >= 10_000 else 0.75 if n_train >= 2_000 else 0.5
        widths = [max(16, int(w * scale)) for w in DEFAULT_WIDTHS]
        if num_classes > widths[-1] // 2:
            widths[-1] = int(2 ** math.ceil(math.log2(2 * num_classes)))
    return {"widths": widths, "input_size": input_size, **recipe.shape_kwargs()}


# Full-size passes over the data the budget must hold before it buys width instead. On CIFAR-10 (2 cores) the
# probe reads ~4 passes in 10 minutes (the wide net lost there: 88.8% against 90.3% with TTA), 7-8.6 in 20 (a tie:
# 90.9% against 90.7% and 91.3%) and 9.9-13 in 30 (it won: 91.4% and 91.6% against 91.2%): the threshold sits in
# the gap between the 20- and 30-minute readings, so the probe's +-10% noise does not flip either choice.
WIDE_PASSES = 9.0
WIDE_FACTOR = 1.5


def widen_for_budget(kwargs: dict[str, Any], n_train: int, passes: float, recipe: FastRecipe) -> dict[str, Any]:
    """A long budget on a large set (at least WIDE_PASSES passes of 10,000+ images at the default widths) trains
    a 1.5x wider net (about 2.2x the FLOPs) for fewer epochs; explicit `widths` are kept as given."""
    if recipe.widths is not None or n_train < 10_000 or passes < WIDE_PASSES:
        return kwargs
    return {**kwargs, "widths": [int(w * WIDE_FACTOR) for w in kwargs["widths"]]}


def default_batch_size(n_train: int) -> int:
    """About 25 steps per epoch, between 32 and 2,000 images."""
    return int(min(2000, max(32, n_train // 25), max(1, n_train)))


def cpu_batch_size(n_train: int) -> int:
    """About 80 steps per epoch on a CPU (50,000 images: 640). A GPU wants big batches to keep busy;
    a CPU runs this net as fast per image at 256 as at 2,000, and more, smaller steps learn more per
    epoch: on 10,000 CIFAR-10 images, 4 epochs reached 79.3% at batch 128 against 73.1% at 1,024."""
    return min(default_batch_size(n_train), max(64, 32 * round(n_train / 80 / 32)))


def budget_batch_size(n_train: int, images_in_budget: float, largest: int) -> int:
    """Batch size for a time budget: at least about 200 optimiser steps in it (the record recipe's
    count), a multiple of 32, at least 32, at most `largest`. A slow machine gets smaller batches
    rather than a handful of steps."""
    per_step = images_in_budget / 200
    return int(min(largest, max(32, 32 * round(per_step / 32)), max(1, n_train)))


def probe_batch(device: torch.device, n_train: int) -> int:
    """Batch for the throughput probe. A CPU runs this net about as fast per image at 64 as at 2,000, so a small
    probe is cheap and true; a GPU is launch-bound at 64 (it would read a fraction of its speed and the budget
    would get tiny batches), so it probes at the batch it trains with."""
    return 64 if device.type == "cpu" else default_batch_size(n_train)


def default_epochs(steps_per_epoch: int) -> int:
    """8 epochs on large sets; small sets get at least ~300 steps (capped at 200 epochs)."""
    return int(min(200, max(8, math.ceil(300 / steps_per_epoch))))


MONITOR_IMAGES = 2000  # validation images watched per epoch before the last, under a budget
MONITOR_SHARE = 0.1  # under a budget, validation and checkpoints take at most this share of training time


def monitor_sample(n_val: int, seed: int) -> np.ndarray | None:
    """Indices of at most MONITOR_IMAGES validation images (sorted, fixed by the seed); None if all fit."""
    if n_val <= MONITOR_IMAGES:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_val, MONITOR_IMAGES, replace=False))
