"""Inference helpers for the fast CNN: batched logits from uint8 arrays, and multi-view TTA."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from picsift.models.registry import DataConfig
from picsift.train.device import autocast


def _views(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (model(x).float() + model(x.flip(-1)).float())


@torch.no_grad()
def predict_tta(model: nn.Module, x: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """Logits averaged over 6 views: the image and its mirror, each also shifted by `shift` pixels
    up-left and down-right (reflect padding). Weights: 1/2 for the unshifted pair, 1/4 per shifted pair.

    x: float (N, 3, H, W) normalised as the model expects; returns float32 (N, K). Call it inside the
    autocast context you want; works for any model whose forward maps such a batch to logits.
    """
    logits = _views(model, x)
    if shift <= 0:
        return logits
    h, w = x.shape[-2:]
    padded = F.pad(x, (shift,) * 4, mode="reflect")
    up_left = padded[:, :, :h, :w]
    down_right = padded[:, :, 2 * shift : 2 * shift + h, 2 * shift : 2 * shift + w]
    shifted = 0.5 * (_views(model, up_left) + _views(model, down_right))
    return 0.5 * logits + 0.5 * shifted


def to_input(x: torch.Tensor, dc: DataConfig, channels_last: bool = True) -> torch.Tensor:
    """uint8 (B, 3, S, S) on any device -> normalised float (B, 3, s, s), centre-cropped to input_size."""
    s, size = x.shape[-1], dc.input_size
    if s != size:
        o = (s - size) // 2
        x = x[:, :, o : o + size, o : o + size]
    mean = torch.tensor(dc.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(dc.std, device=x.device).view(1, 3, 1, 1) * 255.0
    out = (x.float() - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


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
    """uint8 (N, S, S, 3) array (or (N, 3, S, S) tensor) -> float32 logits (N, K) on CPU."""
    model.eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2) if isinstance(images, np.ndarray) else images
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_input(x[i : i + batch_size].to(device), dc)
        with autocast(device, amp):
            out.append((predict_tta(model, xb) if tta else model(xb).float()).cpu())
    return torch.cat(out) if out else torch.empty(0)
