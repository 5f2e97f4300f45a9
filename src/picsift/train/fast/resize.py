"""Progressive resizing for the fast recipe: early training on downscaled batches, the end at full size.

Early training learns coarse features that do not need every pixel, and the fast CNN is all convolutions
and a global max-pool, so any input size works. FLOPs per image at 32 px input (after the 2x2 whitening
and three pooling stages): 20 px 35%, 24 px 52%, 28 px 75% of full size. The last part of training runs
at full size, so BatchNorm statistics and filters settle at the size used to predict.

A schedule is a list of stages `(until, size)`: batches are downscaled to `size` while progress is
below `until` (the first matching stage wins).
"""

from __future__ import annotations

import torch
from torch import nn

from picsift.train.fast.recipe import FastRecipe

MIN_SIZE = 16
Stages = list[tuple[float, int]]


def resize_stages(input_size: int, recipe: FastRecipe, budgeted: bool) -> Stages:
    """The recipe's schedule: `resize: [[until, size], ...]` explicitly, or the single stage `low_res_until`
    (default 0.5 under a time budget, 0 otherwise) at `low_res_size` (default 3/4 of the input, a multiple of 8).
    Stages at or above the input size, or below 16 px, are dropped."""
    if recipe.resize is not None:
        stages = list(recipe.resize)
    else:
        until = recipe.low_res_until if recipe.low_res_until is not None else 0.5 if budgeted else 0.0
        size = recipe.low_res_size if recipe.low_res_size is not None else 8 * round(0.75 * input_size / 8)
        stages = [(until, size)]
    return sorted((u, s) for u, s in stages if u > 0 and MIN_SIZE <= s < input_size)


def size_at(stages: Stages, progress: float, input_size: int) -> int:
    """The input side for a batch at this progress."""
    return next((size for until, size in stages if progress < until), input_size)


def shrink(x: torch.Tensor, size: int) -> torch.Tensor:
    """Downscale a normalised batch (antialiased bilinear), keeping its memory format."""
    out = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (
        out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(memory_format=torch.channels_last) else out
    )
