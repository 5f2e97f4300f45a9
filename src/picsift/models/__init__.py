"""The model registry: fast from-scratch CNNs, pretrained transfer backbones, torchvision/timm backbones,
classical heads."""

from __future__ import annotations

from picsift.models.registry import (
    DataConfig,
    ModelSpec,
    count_parameters,
    create_model,
    get_spec,
    list_models,
    register,
)

_registered = False


def ensure_registered() -> None:
    """Fill the registry once, explicitly (no import-time side effects)."""
    global _registered
    if _registered:
        return
    _registered = True
    from picsift.models.backbones import register_backbones
    from picsift.models.classical_names import register_classical
    from picsift.models.fastcnn import register_fastcnn
    from picsift.models.transfer import register_transfer

    register_fastcnn()
    register_transfer()
    register_backbones()
    register_classical()


__all__ = [
    "DataConfig",
    "ModelSpec",
    "count_parameters",
    "create_model",
    "ensure_registered",
    "get_spec",
    "list_models",
    "register",
]
