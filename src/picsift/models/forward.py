"""The one forward pass of a torch classifier over uint8 images: crop and normalise from its DataConfig, batches,
device, optional mixed precision; logits, and on request the penultimate features (what the last linear layer
reads), from the same pass.

Every caller goes through here: the training loops' validation, the fast recipe's scoring and TTA, the
Predictor, unknown rejection, deep feature extraction. Preprocessing therefore cannot drift between them, and
the exported ONNX graph embeds the same `model_input`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from picsift.device import autocast
from picsift.errors import ConfigError
from picsift.models.registry import DataConfig


def crop_offset(storage_size: int, input_size: int) -> int:
    """Top (= left) of the centre crop from storage_size to input_size, rounded as torchvision's CenterCrop."""
    return int(round((storage_size - input_size) / 2.0))


def model_input(x: torch.Tensor, dc: DataConfig, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, 3, S, S) on any device -> float32 (B, 3, s, s): centre crop to dc.input_size, then
    (x - 255 mean) / (255 std). Traceable, so the ONNX export embeds it."""
    # int(): under ONNX tracing the size is a traced value; the graph takes one storage size, so it is fixed.
    s, size = int(x.shape[-1]), dc.input_size
    if s != size:
        o = crop_offset(s, size)
        x = x[:, :, o : o + size, o : o + size]
    mean = torch.tensor(dc.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(dc.std, device=x.device).view(1, 3, 1, 1) * 255.0
    out = (x.float() - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier head: the model's last nn.Linear, whose input are the penultimate features."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError(f"{type(model).__name__} has no linear head, so it has no penultimate layer to read")
    return found[-1]


def has_linear_head(model: nn.Module) -> bool:
    """True when the module contains an nn.Linear (so its penultimate features can be read)."""
    return any(isinstance(m, nn.Linear) for m in model.modules())


@dataclass
class Forward:
    """logits: float32 (N, K) on CPU; features: float32 (N, D) penultimate features on CPU, or None."""

    logits: torch.Tensor
    features: torch.Tensor | None = None


def _as_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return images


@torch.no_grad()
def forward(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    dc: DataConfig,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 256,
    amp: bool = False,
    channels_last: bool | None = None,
    features: bool = False,
) -> Forward:
    """Run `model` (put in eval mode) over uint8 images (N, S, S, 3) as numpy, or (N, 3, S, S) as a tensor.

    amp: mixed precision where the device has it (picsift.device.autocast); channels_last: memory format of
    the input (None: on CUDA only); features: also catch the penultimate features (raises ConfigError for a
    model without a linear head).
    """
    device = torch.device(device)
    model.eval()
    x = _as_nchw(images)
    if channels_last is None:
        channels_last = device.type == "cuda"
    caught: list[torch.Tensor] = []
    handle = None
    if features:
        head = last_linear(model)
        handle = head.register_forward_pre_hook(lambda _m, args: caught.append(args[0].detach().float().flatten(1)))
    logits, feats = [], []
    try:
        for i in range(0, len(x), batch_size):
            xb = model_input(x[i : i + batch_size].to(device), dc, channels_last)
            with autocast(device, amp):
                logits.append(model(xb).float().cpu())
            if features:
                feats.append(caught[-1].cpu())
                caught.clear()
    finally:
        if handle is not None:
            handle.remove()
    out_logits = torch.cat(logits) if logits else torch.empty(0)
    if not features:
        return Forward(out_logits)
    d = last_linear(model).in_features
    return Forward(out_logits, torch.cat(feats) if feats else torch.zeros((0, d)))


def logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    dc: DataConfig,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 256,
    amp: bool = False,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """uint8 images -> float32 logits (N, K) on CPU (see `forward`)."""
    return forward(model, images, dc, device, batch_size=batch_size, amp=amp, channels_last=channels_last).logits
