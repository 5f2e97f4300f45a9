"""The model registry: every trainable model by name, with its data config.

`create_model("resnet18", num_classes=10)` and `list_models("*net*")`, in the spirit of timm.
Registration is explicit (`picsift.models` adds the built-in families as a loader); a typo gets a "did you mean" hint.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from picsift.errors import ModelNotFoundError
from picsift.suggest import did_you_mean

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataConfig:
    """How pixels become model input. Every transform (train, eval, export, serve) derives from this.

    Images are decoded, shorter side resized to `storage_size` and centre-cropped square (the cached
    form); evaluation then centre-crops `input_size` and normalises with mean/std.
    """

    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    @property
    def storage_size(self) -> int:
        """The side in pixels images are stored at: input_size / crop_pct, rounded, at least input_size."""
        return max(self.input_size, int(round(self.input_size / self.crop_pct)))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict, with storage_size added."""
        d = asdict(self)
        d["storage_size"] = self.storage_size
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        """A DataConfig from `to_dict`'s form (crop_pct 1.0 and bilinear when absent)."""
        return cls(
            input_size=int(d["input_size"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            crop_pct=float(d.get("crop_pct", 1.0)),
            interpolation=str(d.get("interpolation", "bilinear")),
        )

    def with_size(self, input_size: int) -> DataConfig:
        """A copy with another input_size."""
        return replace(self, input_size=input_size)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    family: "fast" (picsift's from-scratch CNN and recipe), "transfer" (offline pretrained backbones and the
    transfer recipe), "torchvision", "timm" or "classical".
    builder(num_classes, pretrained, **kwargs) -> torch.nn.Module (None for classical models).
    """

    name: str
    family: str
    data_config: DataConfig
    description: str
    builder: Callable[..., Any] | None = None
    pretrained_available: bool = False
    default_kwargs: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}
# Filled by picsift.models (always imported before this submodule): the built-in families register on the first
# lookup, and name prefixes ("timm/") resolve any architecture of a library. Hooks rather than imports keep the
# family modules (which import this one) from forming an import cycle with it.
_LOADERS: list[Callable[[], None]] = []
_PREFIX_RESOLVERS: dict[str, Callable[[str], ModelSpec | None]] = {}


def add_loader(load: Callable[[], None]) -> None:
    """Run `load` (which calls `register`) before the next lookup."""
    _LOADERS.append(load)


def add_prefix_resolver(prefix: str, resolve: Callable[[str], ModelSpec | None]) -> None:
    """Names starting with `prefix` that are not registered are built by `resolve(name)` (None: unknown)."""
    _PREFIX_RESOLVERS[prefix] = resolve


def _load() -> None:
    while _LOADERS:
        _LOADERS.pop(0)()


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry and return it. ValueError when its name is already registered."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The registered model `name`, or one a prefix resolver builds ("timm/ARCH"); ModelNotFoundError with the
    closest names otherwise."""
    _load()
    if name in _REGISTRY:
        return _REGISTRY[name]
    for prefix, resolve in _PREFIX_RESOLVERS.items():
        spec = resolve(name) if name.startswith(prefix) else None
        if spec is not None:
            _REGISTRY[name] = spec
            return spec
    hint = did_you_mean(name, _REGISTRY)
    raise ModelNotFoundError(f"unknown model {name!r}{hint} (`picsift models` lists all {len(_REGISTRY)})")


def list_models(pattern: str | None = None) -> list[ModelSpec]:
    """Registered models (fast CNNs first), optionally those matching a glob or substring `pattern`."""
    _load()
    specs = sorted(_REGISTRY.values(), key=lambda s: (s.family != "fast", s.family, s.name))
    if pattern:
        specs = [s for s in specs if fnmatch.fnmatch(s.name, pattern) or pattern in s.name]
    return specs


def create_model(name: str, num_classes: int, *, pretrained: bool = False, **kwargs: Any) -> Any:
    """Build a registered torch model with a `num_classes` head."""
    spec = get_spec(name)
    if spec.builder is None:
        raise ModelNotFoundError(f"model {name!r} is a classical model; it is built by picsift.classical")
    return spec.builder(num_classes=num_classes, pretrained=pretrained, **{**spec.default_kwargs, **kwargs})


def count_parameters(module: Any) -> int:
    """The number of parameters of a torch module (trainable or not)."""
    return int(sum(p.numel() for p in module.parameters()))
