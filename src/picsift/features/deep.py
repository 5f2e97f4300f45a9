"""Deep embeddings: the penultimate layer (the input of the final linear head) of any torch classifier.

A forward pre-hook on the model's last `nn.Linear` captures what the head sees, so the same code serves
picsift's fast CNN, torchvision and timm backbones and trained runs, without knowing their internals.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from picsift.errors import ConfigError
from picsift.models.forward import forward
from picsift.models.registry import DataConfig

log = logging.getLogger("picsift.features")

# Random initialisation is seeded so that an un-pretrained extractor is the same function every time
# (its cached features stay valid and a saved classical model can rebuild it).
INIT_SEED = 0


def build_registry_model(name: str, pretrained: bool, weights: str | None) -> tuple[nn.Module, DataConfig]:
    """A registry CNN, seeded random init unless pretrained/weights, with a throwaway 2-class head."""
    from picsift.models.registry import create_model, get_spec

    spec = get_spec(name)
    if spec.builder is None:
        raise ConfigError(f"cnn:{name}: {name!r} is a {spec.family} model with no layers to read; use a CNN")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = create_model(name, num_classes=2, pretrained=pretrained)
    if weights:
        # Loaded here rather than by the builder so that every registry model (the fast CNN included)
        # accepts a local file; tensors must match by name and shape, the head may differ.
        from pathlib import Path

        from picsift.models.backbones import _load_state_file, load_matching

        load_matching(model, _load_state_file(Path(weights)), weights)
    return model.eval(), spec.data_config


class DeepSource:
    """A torch classifier whose penultimate layer is read, built on first use and kept.

    `describe()` + `module()` are what a saved classical model needs to rebuild the extractor from its
    own artifact folder (see picsift.classical), so no source run or weights file must survive.
    """

    def __init__(
        self, model_name: str, num_classes: int, model_kwargs: dict[str, Any], data_config: DataConfig, build: Any
    ) -> None:
        self.model_name = model_name
        self.num_classes = num_classes
        self.model_kwargs = model_kwargs
        self.data_config = data_config
        self._build = build
        self._module: nn.Module | None = None

    def module(self) -> nn.Module:
        """The torch module (in eval mode), built on first call and kept."""
        if self._module is None:
            self._module = self._build().eval()
        return self._module

    def describe(self) -> dict[str, Any]:
        """{model, num_classes, model_kwargs, data_config}: what rebuilding the extractor needs."""
        return {
            "model": self.model_name,
            "num_classes": self.num_classes,
            "model_kwargs": self.model_kwargs,
            "data_config": self.data_config.to_dict(),
        }

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return penultimate(self.module(), x, self.data_config)


def penultimate(
    model: nn.Module, x: np.ndarray, data_config: DataConfig, batch_size: int = 128, device: str = "cpu"
) -> np.ndarray:
    """uint8 (N, S, S, 3) at data_config.storage_size -> float32 (N, D) head inputs."""
    model = model.to(device)
    found = forward(model, x, data_config, device, batch_size=batch_size, features=True)
    return np.asarray(found.features, dtype=np.float32)
