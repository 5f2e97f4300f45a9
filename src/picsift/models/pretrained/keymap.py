"""Map EfficientNet-PyTorch tensor names onto timm's EfficientNet names, by explicit rules.

EfficientNet-PyTorch (lukemelas) numbers its blocks flatly (`_blocks.N`) and names layers by role
(`_expand_conv`, `_depthwise_conv`, `_project_conv`, `_bn0/1/2`); timm groups blocks into stages
(`blocks.S.I`) and names layers by position (`conv_pw`, `conv_dw`, `conv_pwl`, `bn1/2/3`). Which timm
name a layer gets depends on the block type: a block without expansion is timm's
`DepthwiseSeparableConv` (dw -> pw), otherwise an `InvertedResidual` (pw -> dw -> pwl). The stage and
index of flat block N come from the timm model's own block layout, so no name is guessed by position
in the file, and `map_state_dict` checks that every tensor lands on exactly one target of equal shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from picsift.models.pretrained.errors import WeightsMismatchError

# Top-level layers, outside the blocks.
TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block, by timm block type. Squeeze-excitation (absent in the Lite models) maps the same in both.
_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2", **_SE}
INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
    **_SE,
}
BLOCK_RULES = {"DepthwiseSeparableConv": DEPTHWISE_SEPARABLE, "InvertedResidual": INVERTED_RESIDUAL}

_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_[a-z_]+\d?)\.(.+)$")
_TOP_KEY = re.compile(r"^(_[a-z_]+\d?)\.(.+)$")


@dataclass(frozen=True)
class BlockSlot:
    """Where flat block N lives in timm: stage, index within the stage, and block class name."""

    stage: int
    index: int
    kind: str


def timm_block_layout(model: nn.Module) -> list[BlockSlot]:
    """The flat list of a timm EfficientNet's blocks, in forward order: (stage, index, class name).

    Raises WeightsMismatchError when `model` has no `blocks` nn.Sequential (not a timm EfficientNet)."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise WeightsMismatchError(f"{type(model).__name__} has no `blocks` stages: not a timm EfficientNet")
    return [
        BlockSlot(stage=s, index=i, kind=type(block).__name__)
        for s, stage in enumerate(blocks)
        for i, block in enumerate(stage.children())
    ]


def target_name(key: str, layout: list[BlockSlot]) -> str | None:
    """The timm name for one EfficientNet-PyTorch tensor name, or None when no rule covers it."""
    m = _BLOCK_KEY.match(key)
    if m:
        n, layer, param = int(m.group(1)), m.group(2), m.group(3)
        if n >= len(layout):
            return None
        slot = layout[n]
        rules = BLOCK_RULES.get(slot.kind)
        if rules is None or layer not in rules:
            return None
        return f"blocks.{slot.stage}.{slot.index}.{rules[layer]}.{param}"
    m = _TOP_KEY.match(key)
    if m and m.group(1) in TOP_LEVEL:
        return f"{TOP_LEVEL[m.group(1)]}.{m.group(2)}"
    return None


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_complete(
    mapped: dict[str, torch.Tensor], model: nn.Module, source: str, unmapped: list[str] | None = None
) -> None:
    """Raise WeightsMismatchError unless `mapped` covers every tensor of `model` with equal shapes.

    unmapped: source tensor names no rule covered (reported too). The error lists the offending names.
    """
    own = model.state_dict()
    problems: list[str] = []
    if unmapped:
        problems.append(f"{len(unmapped)} tensor(s) of the file have no target: {_listing(unmapped)}")
    extra = [k for k in mapped if k not in own]
    if extra:
        problems.append(f"{len(extra)} mapped name(s) are not in the model: {_listing(extra)}")
    missing = [k for k in own if k not in mapped]
    if missing:
        problems.append(f"{len(missing)} tensor(s) of the model are not in the file: {_listing(missing)}")
    wrong = [
        f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in mapped.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es): {_listing(wrong)}")
    if problems:
        raise WeightsMismatchError(
            f"weights from {source} do not fit {type(model).__name__} ({len(own)} tensors): " + "; ".join(problems)
        )


def map_state_dict(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch state dict -> the same tensors under timm names for `model`.

    model: the timm EfficientNet built with its native head (so `_fc` has a `classifier` to land on).
    Raises WeightsMismatchError listing the unmapped source names, uncovered or doubly-covered targets,
    and shape mismatches; on return every source tensor maps to exactly one target of equal shape.
    """
    layout = timm_block_layout(model)
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    duplicates: list[str] = []
    for key, tensor in state.items():
        name = target_name(key, layout)
        if name is None:
            unmapped.append(key)
        elif name in mapped:
            duplicates.append(f"{key} -> {name}")
        else:
            mapped[name] = tensor
    if duplicates:
        raise WeightsMismatchError(f"weights from {source}: several tensors map to one name: {_listing(duplicates)}")
    check_complete(mapped, model, source, unmapped)
    return mapped
