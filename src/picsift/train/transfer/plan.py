"""How the transfer recipe sizes itself before any image is decoded: the input resolution from the images' sizes,
their number and the time budget. Pure functions of counts and sizes, so each rule is testable on its own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.models.registry import DataConfig, ModelSpec
from picsift.store import ImageRow
from picsift.train.transfer.recipe import TransferRecipe

RESOLUTIONS = (224, 192, 160, 128, 96, 64)  # multiples of 32: EfficientNet downsamples 32x
MIN_RESOLUTION = 32
# EfficientNet-Lite0 at 224 px through ONNX Runtime on 2 cores of the development machine: 59 images/s (median of
# 5 rounds, load ~6; bench/results/embed_bench.json), 133 on a quieter moment (pretrained_probe.json). The planner
# takes the busy figure, per thread; cost grows with the pixel count.
EMBED_RATE_224_PER_THREAD = 25.0
EMBED_RATE_224_GPU = 2000.0
# Embedding cost per image relative to Lite0 at the same size (bench/results/pretrained_probe.json, 224 px, ONNX
# Runtime: 133, 55 and 51 images/s).
EMBED_COST = {"efficientnet_lite0": 1.0, "efficientnet_lite1": 2.4, "efficientnet_lite2": 2.6}
PHOTO_SIDE = 0.75  # images whose median shorter side is at least this share of the native size count as photos
UPSCALE = 4  # small images are embedded at up to 4x their side (pretrained filters expect ImageNet-sized objects)


def embed_rate(resolution: int, device: torch.device, backbone: str = "efficientnet_lite0") -> float:
    """Estimated images per second of the embedding pass at `resolution` px (see EMBED_RATE_224_PER_THREAD and
    EMBED_COST; an unknown backbone counts as the costliest known one)."""
    base = EMBED_RATE_224_GPU if device.type != "cpu" else EMBED_RATE_224_PER_THREAD * torch.get_num_threads()
    return base * (224 / resolution) ** 2 / EMBED_COST.get(backbone, max(EMBED_COST.values()))


@dataclass(frozen=True)
class ResolutionChoice:
    """The input side in px and why (for run.json); `preferred`: the largest candidate fitted the budget."""

    resolution: int
    reason: str
    preferred: bool = True


def choose_resolution(
    native: int,
    median_side: float,
    n_images: int,
    budget_s: float | None,
    share: float,
    device: torch.device,
    backbone: str = "efficientnet_lite0",
) -> ResolutionChoice:
    """The largest of RESOLUTIONS up to the weights' native size (photos) or UPSCALE x the median side (small
    images, at least 64 px) whose estimated embedding time for `n_images` with `backbone` fits `share` of the budget
    (the smallest when none fits; the largest without a budget)."""
    photos = median_side >= PHOTO_SIDE * native
    top = native if photos else int(min(native, max(64, UPSCALE * median_side)))
    candidates = [r for r in RESOLUTIONS if r <= top] or [RESOLUTIONS[-1]]
    what = f"photos (median shorter side {median_side:.0f} px)" if photos else f"small images ({median_side:.0f} px)"
    if budget_s is None:
        return ResolutionChoice(candidates[0], f"{what}: up to {top} px, no time budget")
    for r in candidates:
        seconds = n_images / embed_rate(r, device, backbone)
        if seconds <= share * budget_s:
            return ResolutionChoice(
                r,
                f"{what}: {r} px, {n_images} images embed in ~{seconds:.0f} s of the {budget_s:.0f} s budget",
                r == candidates[0],
            )
    r = candidates[-1]
    return ResolutionChoice(
        r, f"{what}: {r} px, the smallest; {n_images} images do not embed in {share:.0%} of the budget", False
    )


def median_side(rows: list[ImageRow]) -> float:
    """The median shorter side of the images, in px (32 when no sizes are known)."""
    sides = [min(r.width, r.height) for r in rows if r.width and r.height]
    return float(np.median(sides)) if sides else 32.0


def resolve_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[ImageRow]) -> DataConfig:
    """The backbone's data config (mean/std, crop share, interpolation of its weights) at the input size chosen
    by `choose_resolution` for these training images (validation images are assumed to add ~15%);
    `--image-size` or the recipe's `resolution` win. Raises ConfigError for a size below MIN_RESOLUTION."""
    recipe = TransferRecipe.from_params(cfg.model_params)
    fixed = cfg.image_size or recipe.resolution
    if fixed:
        if fixed < MIN_RESOLUTION:
            raise ConfigError(f"--image-size {fixed} is too small for {spec.name}: use at least {MIN_RESOLUTION}")
        return dataclasses.replace(spec.data_config, input_size=int(fixed))
    from picsift.device import select_device

    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    choice = choose_resolution(
        spec.data_config.input_size,
        median_side(rows),
        int(len(rows) * 1.15),
        budget_s,
        recipe.embed_share,
        select_device(cfg.device),
        spec.name,
    )
    return dataclasses.replace(spec.data_config, input_size=choice.resolution)
