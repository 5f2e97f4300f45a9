"""torchvision and timm backbones with the classifier head replaced.

Pretrained weights are loaded by the libraries' own code: torchvision's `weights=` API and timm's
`pretrained=True` (online, or from the local cache), or from a local file given as `weights=PATH`.
Without weights we fail loudly; we never train from scratch when the user asked for pretrained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from picsift.errors import WeightsNotAvailableError
from picsift.models.registry import IMAGENET_MEAN, IMAGENET_STD, DataConfig, ModelSpec, register

TORCHVISION_MODELS = {
    "resnet18": "ResNet-18 (11.7M params), a solid transfer-learning baseline",
    "resnet50": "ResNet-50 (25.6M params)",
    "mobilenet_v3_small": "MobileNetV3-Small, for phones and fast CPU inference",
    "mobilenet_v3_large": "MobileNetV3-Large",
    "efficientnet_b0": "EfficientNet-B0, accuracy per FLOP",
    "convnext_tiny": "ConvNeXt-Tiny (28.6M params), strong modern CNN",
}
TIMM_MODELS = {
    "timm/resnet18": "timm ResNet-18",
    "timm/efficientnet_b0": "timm EfficientNet-B0",
    "timm/mobilenetv3_large_100": "timm MobileNetV3-Large 1.0",
    "timm/convnext_tiny": "timm ConvNeXt-Tiny",
    "timm/vit_tiny_patch16_224": "timm ViT-Tiny/16 (a transformer baseline)",
}


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise WeightsNotAvailableError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's input error
        raise WeightsNotAvailableError(f"cannot read weights file {path}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsNotAvailableError(f"weights file {path} holds no state dict")
    return state


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load every tensor whose name and shape match; the (replaced) head is allowed to differ.

    Raises if most of the backbone did not load: a wrong file must not silently give random weights.
    """
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    missing = [k for k in own if k not in usable]
    if len(usable) < 0.8 * len(own):
        raise WeightsNotAvailableError(
            f"weights from {source} fit only {len(usable)} of {len(own)} tensors of this model: "
            "is it the right architecture?"
        )
    model.load_state_dict(usable, strict=False)
    return missing


def _torchvision_builder(arch: str):
    def build(num_classes: int, pretrained: bool = False, weights: str | None = None, **_: Any) -> nn.Module:
        import torchvision.models as tvm

        if weights:
            model = tvm.get_model(arch, weights=None)
            load_matching(model, _load_state_file(Path(weights)), str(weights))
        elif pretrained:
            try:
                model = tvm.get_model(arch, weights="DEFAULT")
            except Exception as e:  # offline and not cached, or a corrupt download
                raise WeightsNotAvailableError(
                    f"cannot load pretrained ImageNet weights for {arch} ({type(e).__name__}: {e}); "
                    "connect to the internet once, or pass --weights PATH to a local weights file"
                ) from e
        else:
            model = tvm.get_model(arch, weights=None)
        _replace_torchvision_head(model, num_classes)
        return model

    return build


def _replace_torchvision_head(model: nn.Module, num_classes: int) -> None:
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        model.fc = nn.Linear(fc.in_features, num_classes)
        return
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential):
        for i in range(len(classifier) - 1, -1, -1):
            layer = classifier[i]
            if isinstance(layer, nn.Linear):
                classifier[i] = nn.Linear(layer.in_features, num_classes)
                return
    raise TypeError(f"do not know how to replace the head of {type(model).__name__}")


def _timm_builder(arch: str):
    def build(num_classes: int, pretrained: bool = False, weights: str | None = None, **_: Any) -> nn.Module:
        import timm

        if weights:
            path = Path(weights)
            if not path.exists():
                raise WeightsNotAvailableError(f"weights file {path} does not exist")
            # timm's own loader: reads the file, adapts the first conv and drops a mismatched head.
            try:
                return timm.create_model(
                    arch, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay={"file": str(path)}
                )
            except Exception as e:
                raise WeightsNotAvailableError(f"cannot load {path} into timm model {arch}: {e}") from e
        if pretrained:
            try:
                return timm.create_model(arch, pretrained=True, num_classes=num_classes)
            except Exception as e:
                raise WeightsNotAvailableError(
                    f"cannot load pretrained weights for timm model {arch} ({type(e).__name__}: {e}); "
                    "connect to the internet once, or pass --weights PATH to a local weights file"
                ) from e
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)

    return build


def timm_data_config(arch: str) -> DataConfig:
    """The data config timm's pretrained config gives `arch` (input size, mean, std, crop, interpolation);
    224 px with ImageNet statistics when timm or the config is unavailable."""
    try:
        import timm

        cfg = timm.get_pretrained_cfg(arch)
        if cfg is not None:
            size = int(cfg.input_size[-1])
            return DataConfig(
                input_size=size,
                mean=tuple(cfg.mean),  # type: ignore[arg-type]
                std=tuple(cfg.std),  # type: ignore[arg-type]
                crop_pct=float(cfg.crop_pct or 0.875),
                interpolation=str(cfg.interpolation or "bilinear"),
            )
    except Exception:
        pass
    return DataConfig(input_size=224)


def register_backbones() -> None:
    """Register the built-in torchvision and timm backbones in the model registry."""
    for arch, desc in TORCHVISION_MODELS.items():
        register(
            ModelSpec(
                name=arch,
                family="torchvision",
                data_config=DataConfig(input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875),
                description=desc,
                builder=_torchvision_builder(arch),
                pretrained_available=True,
            )
        )
    for name, desc in TIMM_MODELS.items():
        arch = name.split("/", 1)[1]
        register(
            ModelSpec(
                name=name,
                family="timm",
                data_config=timm_data_config(arch),
                description=desc,
                builder=_timm_builder(arch),
                pretrained_available=True,
            )
        )


def timm_spec(name: str) -> ModelSpec | None:
    """Any timm architecture by `timm/<arch>`, even if not pre-registered."""
    import timm

    arch = name.split("/", 1)[1]
    if arch not in timm.list_models():
        return None
    return ModelSpec(
        name=name,
        family="timm",
        data_config=timm_data_config(arch),
        description=f"timm {arch}",
        builder=_timm_builder(arch),
        pretrained_available=True,
    )
