"""Pretrained backbones for transfer learning, by picsift's name ("efficientnet_lite0", ...), family "transfer".

`create_model("efficientnet_lite0", num_classes=2)` builds timm's `tf_efficientnet_lite0` with a 2-way head and
random weights: that is all a saved run needs, as its `weights.safetensors` holds the fine-tuned tensors, so
loading, predicting, evaluating, exporting and serving a transfer run never need the weights package. Only
training asks for the ImageNet weights (`pretrained=True` or `weights=PATH`), through the offline provider
(`picsift.models.pretrained`), which says how to get them when they are absent.

Every backbone of the provider's catalogue is registered, installed or not, so that a run trained on another
machine still loads here; `picsift models` says which have their weights on this machine.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from picsift.models.pretrained.catalog import KNOWN, PretrainedSpec
from picsift.models.registry import ModelSpec, register

FAMILY = "transfer"


def _builder(spec: PretrainedSpec):
    def build(num_classes: int, pretrained: bool = False, weights: str | None = None, **_: Any) -> nn.Module:
        if pretrained or weights:
            from picsift.models.pretrained.provider import create_pretrained_backbone

            model, _dc, _found = create_pretrained_backbone(spec.name, num_classes=num_classes, weights=weights)
            return model
        import timm

        return timm.create_model(spec.timm_arch, pretrained=False, num_classes=num_classes)

    return build


def register_transfer() -> None:
    """Register every backbone the pretrained catalogue knows (the architecture needs no weights package)."""
    for spec in KNOWN.values():
        register(
            ModelSpec(
                name=spec.name,
                family=FAMILY,
                data_config=spec.data_config,
                description=f"{spec.timm_arch}, ImageNet-pretrained (top-1 {spec.top1:.1f}%), for transfer learning",
                builder=_builder(spec),
                pretrained_available=True,
            )
        )
