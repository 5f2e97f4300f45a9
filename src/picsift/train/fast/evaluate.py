"""Inference helpers for the fast CNN: batched logits from uint8 arrays, and its 6-view TTA.

Both go through the one forward pass (picsift.models.forward); the TTA is the named view set "flip-shift"
of picsift.inference.tta, so the benchmark's "with TTA" numbers and `picsift predict` share one implementation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from picsift.inference.tta import FLIP_SHIFT, average_logits
from picsift.models.forward import logits, model_input
from picsift.models.registry import DataConfig


def to_input(x: torch.Tensor, dc: DataConfig, channels_last: bool = True) -> torch.Tensor:
    """uint8 (B, 3, S, S) on any device -> normalised float (B, 3, s, s), centre-cropped to input_size."""
    return model_input(x, dc, channels_last)


@torch.no_grad()
def logits_for(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    dc: DataConfig,
    device: torch.device,
    *,
    tta: bool = False,
    amp: bool = True,
    batch_size: int = 1000,
) -> torch.Tensor:
    """uint8 (N, S, S, 3) array (or (N, 3, S, S) tensor) -> float32 logits (N, K) on CPU.

    tta: the logits averaged over the "flip-shift" views (the image and its mirror at weight 1/4 each, both
    shifted one pixel up-left and down-right at 1/8 each).
    """

    def run(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        return logits(model, x, dc, device, batch_size=batch_size, amp=amp, channels_last=True)

    if not tta:
        return run(images)
    x = images if isinstance(images, np.ndarray) else images.permute(0, 2, 3, 1).cpu().numpy()
    averaged = average_logits(lambda v: run(v).numpy(), x, FLIP_SHIFT)
    return torch.from_numpy(averaged.astype(np.float32))
