"""PLACEHOLDER fast recipe (to be replaced): the standard loop with small-image defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift.config import TrainConfig
from picsift.models.registry import DataConfig, ModelSpec
from picsift.store import ImageRow
from picsift.train.data import TrainData, TrainedModel
from picsift.train.loop import fit_standard


def resolve_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    if cfg.image_size:
        return dataclasses.replace(spec.data_config, input_size=cfg.image_size)
    sides = [min(r.width or 32, r.height or 32) for r in rows] or [32]
    median = float(np.median(sides))
    size = 32 if median <= 48 else 64
    return dataclasses.replace(spec.data_config, input_size=size)


def fit_fast(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    log_row: Callable[[dict[str, Any]], None],
    run_dir: Path,
    resume_from: Path | None = None,
) -> TrainedModel:
    cfg = dataclasses.replace(cfg, augment="flip-crop" if cfg.augment == "flip-crop" else cfg.augment)
    return fit_standard(spec, data, cfg, device, log_row, run_dir, resume_from)
