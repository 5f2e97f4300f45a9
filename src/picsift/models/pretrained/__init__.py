"""Pretrained backbones whose weights install with pip (no model hub at run time), and fast embeddings.

`create_pretrained_backbone("efficientnet_lite0")` -> (timm model, DataConfig, PretrainedWeights);
`available_pretrained()` lists what this machine has; `embed(model, images, data_config)` turns uint8
images into float32 features.
"""

from __future__ import annotations

from picsift.models.pretrained.catalog import DEFAULT_PRETRAINED, KNOWN, PretrainedSpec, get_pretrained_spec
from picsift.models.pretrained.embed import EMBED_BACKENDS, Embedder, embed, make_embedder
from picsift.models.pretrained.errors import WeightsIntegrityError, WeightsMismatchError
from picsift.models.pretrained.provider import (
    PretrainedWeights,
    available_pretrained,
    create_pretrained_backbone,
    locate_weights,
    sha256_file,
)

__all__ = [
    "DEFAULT_PRETRAINED",
    "EMBED_BACKENDS",
    "KNOWN",
    "Embedder",
    "PretrainedSpec",
    "PretrainedWeights",
    "WeightsIntegrityError",
    "WeightsMismatchError",
    "available_pretrained",
    "create_pretrained_backbone",
    "embed",
    "get_pretrained_spec",
    "locate_weights",
    "make_embedder",
    "sha256_file",
]
