"""The model registry: fast from-scratch CNNs, pretrained transfer backbones, torchvision/timm backbones,
classical heads."""

from __future__ import annotations

from picsift.models.registry import (
    DataConfig,
    ModelSpec,
    add_loader,
    add_prefix_resolver,
    count_parameters,
    create_model,
    get_spec,
    list_models,
    register,
)


def _register_builtin() -> None:
    """The built-in families, registered explicitly on the first lookup (importing them loads torch)."""
    from picsift.models.backbones import register_backbones
    from picsift.models.classical_names import register_classical
    from picsift.models.fastcnn import register_fastcnn
    from picsift.models.transfer import register_transfer

    register_fastcnn()
    register_transfer()
    register_backbones()
    register_classical()


def _timm_architecture(name: str) -> ModelSpec | None:
    """ "timm/ARCH": any timm architecture, not only the pre-registered ones."""
    from picsift.models.backbones import timm_spec

    return timm_spec(name)


add_loader(_register_builtin)
add_prefix_resolver("timm/", _timm_architecture)


def ensure_registered() -> None:
    """Fill the registry now (it fills itself on the first lookup anyway)."""
    list_models()


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
