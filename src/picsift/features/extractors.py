"""Feature extractors by name, with "did you mean" on typos.

    hog, lbp, color-hist        handcrafted (scikit-image / numpy), at 64x64 pixels
    cnn:MODEL                   penultimate layer of a registry CNN, seeded random init (no download)
    cnn:MODEL+pretrained        ... with the library's pretrained weights (needs them cached or online)
    cnn:MODEL@PATH              ... with a local weights file (.safetensors / .pth)
    run:RUN                     penultimate layer of a trained run's model (run id or folder)
    efficientnet_lite0[@SIZE]   ImageNet-pretrained EfficientNet-Lite0/1/2 features, when their weights are
                                installed (picsift.features.pretrained); 224 px unless @SIZE

An extractor maps uint8 (N, S, S, 3) images to float32 (N, D); images of another size are resized to
its `size` first, so D is fixed. `key` identifies the function exactly (weights included): it names
the feature cache, so two different functions never share cached vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from picsift.data.hashing import sha256_file
from picsift.errors import ConfigError, ModelNotFoundError, RunNotFoundError, WeightsNotAvailableError
from picsift.features import handcrafted, pretrained
from picsift.runs import open_run
from picsift.suggest import did_you_mean

HANDCRAFTED_SIZE = 64

_HANDCRAFTED: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "hog": (handcrafted.hog_features, "HOG: gradient orientation histograms, 1,764 values (shape)"),
    "lbp": (handcrafted.lbp_features, "LBP: uniform local binary patterns on a 4x4 grid, 160 values (texture)"),
    "color-hist": (handcrafted.color_hist_features, "joint RGB histogram, 512 values (colour)"),
}
# Bumped when an extractor's definition changes, so stale cached vectors are never reused.
_VERSION = "v1"


@dataclass
class Extractor:
    """A named feature extractor: uint8 (N, S, S, 3) -> float32 (N, D), resizing to `size` first; `key`
    names its cached vectors."""

    name: str
    kind: str  # "handcrafted" | "cnn" | "run" | "pretrained"
    size: int  # images are resized to size x size before extraction (the decoded-cache size to use)
    key: str
    description: str
    _fn: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    source: Any = field(default=None, repr=False)  # deep.DeepSource for cnn:/run: extractors

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, D)."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
            raise ConfigError(
                f"feature extractor {self.name!r} expects uint8 images shaped (N, S, S, 3), "
                f"got {x.dtype} {tuple(x.shape)}"
            )
        x = resize_batch(x, self.size)
        return np.asarray(self._fn(x), dtype=np.float32).reshape(len(x), -1)


def resize_batch(x: np.ndarray, size: int) -> np.ndarray:
    """Resize (N, H, W, 3) uint8 to (N, size, size, 3) with the same shorter-side + centre-crop rule as decoding."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    from PIL import Image

    from picsift.data.images import resize_square

    out = np.empty((len(x), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(x):
        out[i] = resize_square(Image.fromarray(img), size)
    return out


def list_extractors() -> list[dict[str, str]]:
    """The extractor names a user can type, with one line each."""
    rows = [{"name": n, "description": d} for n, (_, d) in _HANDCRAFTED.items()]
    rows += [
        {
            "name": "cnn:MODEL",
            "description": "penultimate layer of a registry CNN (e.g. cnn:fastcnn, cnn:resnet18); "
            "random init unless +pretrained or @WEIGHTS",
        },
        {"name": "run:RUN", "description": "penultimate layer of a trained run's model"},
    ]
    return rows + pretrained.list_pretrained()


def _unknown(name: str) -> ConfigError:
    from picsift.models.pretrained import KNOWN
    from picsift.models.registry import list_models

    cnns = [f"cnn:{s.name}" for s in list_models() if s.builder is not None]
    did = did_you_mean(name, [*_HANDCRAFTED, *KNOWN, *cnns])
    return ConfigError(
        f"unknown feature extractor {name!r}{did} (known: {', '.join([*_HANDCRAFTED, *KNOWN])}, cnn:MODEL, run:RUN; "
        "`picsift features --list` shows them)"
    )


def _cnn_extractor(name: str, spec_text: str) -> Extractor:
    from picsift.features import deep
    from picsift.models.registry import get_spec

    model_name, weights, pretrained = spec_text, None, False
    if "@" in spec_text:
        model_name, weights = spec_text.split("@", 1)
    elif spec_text.endswith("+pretrained"):
        model_name, pretrained = spec_text[: -len("+pretrained")], True
    try:
        spec = get_spec(model_name)
    except ModelNotFoundError as e:
        raise ConfigError(f"feature extractor {name!r}: {e}") from None
    if spec.builder is None:
        raise ConfigError(
            f"feature extractor {name!r}: {model_name!r} is a {spec.family} model without layers; "
            "cnn: needs a CNN such as cnn:fastcnn or cnn:resnet18"
        )
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"feature extractor {name!r}: weights file {path} does not exist")
        identity = f"weights-{sha256_file(path)[:16]}"
        description = f"{model_name} penultimate layer, weights from {path.name}"
    elif pretrained:
        identity = "pretrained"
        description = f"{model_name} penultimate layer, library pretrained weights"
    else:
        identity = f"random-seed{deep.INIT_SEED}"
        description = f"{model_name} penultimate layer, random init (seed {deep.INIT_SEED}; no pretrained weights)"

    def build() -> Any:
        try:
            return deep.build_registry_model(model_name, pretrained, weights)[0]
        except WeightsNotAvailableError as e:
            raise WeightsNotAvailableError(
                f"feature extractor {name!r}: {e} (for features: cnn:{model_name}@PATH uses a local file)"
            ) from None

    source = deep.DeepSource(model_name, 2, {}, spec.data_config, build)
    key = f"cnn:{model_name}/{identity}/{_VERSION}"
    return Extractor(name, "cnn", spec.data_config.storage_size, key, description, source, source)


def _run_extractor(name: str, run: str, workspace: Any) -> Extractor:
    from picsift.features import deep
    from picsift.models.artifact import TORCH_FAMILIES, WEIGHTS_FILE, read_meta
    from picsift.models.registry import DataConfig

    try:
        found = open_run(workspace, run)
        run_dir = found.path
    except RunNotFoundError as e:
        raise ConfigError(f"feature extractor {name!r}: {e}") from None
    meta = read_meta(run_dir)
    if meta["family"] not in TORCH_FAMILIES:
        raise ConfigError(
            f"feature extractor {name!r}: run {run_dir.name} is a {meta['family']} model ({meta['model']}); "
            "run: needs a CNN run, whose penultimate layer becomes the features"
        )
    weights = found.artifact_dir / WEIGHTS_FILE
    dc = DataConfig.from_dict(meta["data_config"])

    def build() -> Any:
        from picsift.models.artifact import load_artifact

        return load_artifact(run_dir).model

    source = deep.DeepSource(meta["model"], len(meta["classes"]), dict(meta["model_kwargs"]), dc, build)
    key = f"run:{run_dir.name}/{sha256_file(weights)[:16]}/{_VERSION}"
    description = f"penultimate layer of run {run_dir.name} ({meta['model']})"
    return Extractor(name, "run", dc.storage_size, key, description, source, source)


def extractor_from_module(name: str, key: str, source: Any) -> Extractor:
    """An extractor around an already-built deep source (a saved classical model's bundled CNN)."""
    size = source.data_config.storage_size
    return Extractor(name, "cnn", size, key, f"{source.model_name} penultimate layer (bundled)", source, source)


def get_extractor(name: str, workspace: Any = None) -> Extractor:
    """An extractor by name; `workspace` (a Workspace) resolves run ids for run:RUN."""
    name = name.strip()
    if name == "cnn":  # shorthand: the default CNN's embedding
        name = "cnn:fastcnn"
    if name in _HANDCRAFTED:
        fn, description = _HANDCRAFTED[name]
        return Extractor(
            name, "handcrafted", HANDCRAFTED_SIZE, f"{name}/{HANDCRAFTED_SIZE}/{_VERSION}", description, fn
        )
    if name.startswith("cnn:") and len(name) > 4:
        return _cnn_extractor(name, name[4:])
    if name.startswith("run:") and len(name) > 4:
        return _run_extractor(name, name[4:], workspace)
    found = pretrained.pretrained_features(name)
    if found is not None:
        return Extractor(name, "pretrained", found.size, found.key, found.description, found.source)
    raise _unknown(name)
