"""picsift's default model: a small from-scratch CNN built for fast training on small images.

The design follows what the CIFAR-10 speed records taught (Keller Jordan's airbench, hlb-CIFAR10),
re-derived here and generalised to any number of classes and input size:

- a frozen first convolution whose filters whiten 2x2 pixel patches (initialised from the training
  data by `init_whitening`), followed by positive and negative copies so GELU keeps both signs;
- `depth` blocks of conv -> 2x2 max-pool -> BatchNorm -> GELU -> conv -> BatchNorm -> GELU, with
  identity-initialised convolutions (a block starts close to a pass-through, so deep signal flows
  from the first step); `pool_first=N` makes the last N blocks pool before their first convolution
  (a quarter of its FLOPs; cheaper, but it trained a weaker net in the same time, see docs/train.md);
  `third_conv=N` gives the last N blocks a third conv -> BatchNorm -> GELU at the block's pooled size;
- BatchNorm with frozen unit scale (only the shift learns: the conv filters already carry scale)
  and a short running-statistics memory, which suits runs of only a few hundred steps;
- global max-pooling and a bias-free linear head whose output is divided by the feature width,
  a fixed temperature that keeps the initial logits small.

Every shape choice is a constructor argument (JSON-serialisable), so
`create_model("fastcnn", num_classes=K, **model_kwargs)` rebuilds the architecture exactly and
`load_state_dict` restores all weights, including the frozen whitening filters (parameters that
do not require grad, so they are saved with the rest).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from picsift.models.registry import DataConfig, ModelSpec, register

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
DEFAULT_WIDTHS = (64, 256, 256)


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1; `memory` is how much of the old running stats each step keeps."""

    def __init__(self, num_features: int, memory: float = 0.6, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps, momentum=1.0 - memory)
        self.weight.requires_grad_(False)

    # No casts around it: given a bf16/fp16 input and fp32 parameters, PyTorch's batch_norm accumulates its
    # statistics and gradients in fp32 (output within bf16 rounding and gradients within 1e-4 of the cast
    # path, even for a channel whose spread is 1/500 of its mean), and skipping the two copies makes
    # BatchNorm 2.4x faster on a CPU, about 5% of a training step.


class IdentityInitConv(nn.Conv2d):
    """3x3 'same' convolution whose first in_channels filters start as the identity (dirac)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, kernel_size=3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        """Default initialisation, then the first min(in, out) filters set to the identity (dirac)."""
        super().reset_parameters()
        with torch.no_grad():
            n = min(self.weight.shape[0], self.weight.shape[1])
            nn.init.dirac_(self.weight[:n])


ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU}


class Block(nn.Module):
    """conv -> max-pool (or pool -> conv) -> norm -> activation, then conv -> norm -> activation (and an optional
    third conv): halves the spatial size."""

    def __init__(
        self,
        cin: int,
        cout: int,
        bn_memory: float,
        activation: str = "gelu",
        pool_first: bool = False,
        third_conv: bool = False,
    ) -> None:
        super().__init__()
        self.pool_first = pool_first
        self.conv1 = IdentityInitConv(cin, cout)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(cout, bn_memory)
        self.conv2 = IdentityInitConv(cout, cout)
        self.norm2 = FrozenScaleBatchNorm(cout, bn_memory)
        # Optional third layer; None registers nothing, so state dicts of two-conv blocks are unchanged.
        self.conv3 = IdentityInitConv(cout, cout) if third_conv else None
        self.norm3 = FrozenScaleBatchNorm(cout, bn_memory) if third_conv else None
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H/2, W/2)."""
        x = self.conv1(self.pool(x)) if self.pool_first else self.pool(self.conv1(x))
        x = self.act(self.norm1(x))
        x = self.act(self.norm2(self.conv2(x)))
        if self.conv3 is None or self.norm3 is None:
            return x
        return self.act(self.norm3(self.conv3(x)))


def default_depth(input_size: int) -> int:
    """Blocks needed to bring the image down to about 3x3 (each block halves it): 3 at 16-40 px."""
    depth, side = 0, input_size - 1  # the 2x2 whitening conv (no padding) removes one pixel
    while side >= 6 or depth < 3:
        side //= 2
        depth += 1
        if side < 2:
            break
    return max(3, depth)


class FastCNN(nn.Module):
    """(N, 3, H, W) float input, normalised with the data config -> logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, ...] | list[int] = DEFAULT_WIDTHS,
        depth: int | None = None,
        input_size: int = 32,
        whiten_kernel: int = 2,
        bn_memory: float = 0.6,
        activation: str = "gelu",
        pool_first: int = 0,
        third_conv: int = 0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"fastcnn activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        depth = depth or default_depth(input_size)
        if not 0 <= pool_first <= depth:
            raise ValueError(f"fastcnn pool_first must be between 0 and the depth ({depth}), got {pool_first}")
        if not 0 <= third_conv <= depth:
            raise ValueError(f"fastcnn third_conv must be between 0 and the depth ({depth}), got {third_conv}")
        widths = list(widths)
        if len(widths) < depth:  # deeper nets for larger images repeat the last width
            widths += [widths[-1]] * (depth - len(widths))
        widths = widths[:depth]
        self.input_size = input_size
        self.whiten_width = 2 * 3 * whiten_kernel**2
        # Frozen filters (a Parameter without grad, so state_dict carries them); the bias trains early on.
        self.whiten = nn.Conv2d(3, self.whiten_width, whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        blocks, cin = [], self.whiten_width
        for i, w in enumerate(widths):
            last = depth - i  # this block and the ones after it
            blocks.append(
                Block(cin, w, bn_memory, activation, pool_first=last <= pool_first, third_conv=last <= third_conv)
            )
            cin = w
        self.act = nn.GELU()
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.scale = 1.0 / cin
        with torch.no_grad():
            self.head.weight.mul_(1.0 / self.head.weight.std())

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> int:
        """Set the whitening filters from normalised training images (N, 3, H, W), N ~ a few thousand.

        The filters are the eigenvectors of the covariance of all kxk patches, scaled by 1/sqrt(eigenvalue),
        so the first layer's outputs are decorrelated with unit variance; each filter also appears negated.
        Returns the number of patch directions the data does not vary in (their filters are zero).
        """
        k = self.whiten.weight.shape[-1]
        x = images.float()
        patches = x.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)
        cov = flat.T @ flat / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = eigenvectors.T.reshape(-1, 3, k, k) / torch.sqrt(eigenvalues.clamp_min(0) + eps).view(-1, 1, 1, 1)
        # Directions the data never varies in (grey images have no colour, upscaled ones no fine detail)
        # amplify rounding noise by up to 1/sqrt(eps) ~ 45x; callers use the count to avoid bf16 then.
        # CIFAR-10's weakest direction is ~1e-5 of the strongest; absent ones are ~1e-7 or less.
        absent = eigenvalues < 1e-6 * eigenvalues.max()
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight.dtype))
        return int(absent.sum())

    def features(self, x: torch.Tensor, whiten_bias_grad: bool = True) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, D) features: fp32 whitening, the blocks, global max-pool."""
        bias = self.whiten.bias
        if bias is not None and not whiten_bias_grad:
            bias = bias.detach()
        # Always fp32: whitening filters scale low-variance patch directions by up to 1/sqrt(eps) ~ 45,
        # which would amplify bf16 rounding of the input into noise. The layer is tiny (3 -> 24 channels).
        with torch.autocast(x.device.type, enabled=False):
            x = self.act(F.conv2d(x.float(), self.whiten.weight.float(), None if bias is None else bias.float()))
        return self.blocks(x).amax(dim=(2, 3))

    def forward(self, x: torch.Tensor, whiten_bias_grad: bool = True) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> logits (N, num_classes)."""
        return self.head(self.features(x, whiten_bias_grad)) * self.scale


def build(num_classes: int, pretrained: bool = False, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """A FastCNN with `num_classes` outputs. ConfigError when pretrained weights are asked for, or for an
    out-of-range model parameter."""
    from picsift.errors import ConfigError

    if pretrained or weights:
        raise ConfigError(
            "fastcnn is trained from scratch and has no pretrained weights; drop --pretrained/--weights "
            "or pick a backbone (`picsift models`)"
        )
    try:
        return FastCNN(num_classes, **kwargs)
    except ValueError as e:  # an out-of-range model parameter (`--param pool_first=9`) is the user's to fix
        raise ConfigError(f"{e}; see the fastcnn model_params in docs/train.md") from e


def register_fastcnn() -> None:
    """Register picsift's fast CNN ("fastcnn", 32 px, CIFAR statistics) in the model registry."""
    register(
        ModelSpec(
            name="fastcnn",
            family="fast",
            data_config=DataConfig(input_size=32, mean=CIFAR_MEAN, std=CIFAR_STD, crop_pct=1.0),
            description="picsift's fast from-scratch CNN for small images (what --model auto picks for them)",
            builder=build,
        )
    )
