"""Self-describing model artifacts: `model/weights.safetensors` + `model/model.json`.

model.json holds the model name, family, constructor kwargs, class names, data config and the picsift
version: everything needed to rebuild and use the model, and nothing pickled.

This module saves and loads torch models of the registry. Families stored otherwise bring their own writer
(`save_artifact(write_model=...)`) and loader (`load_artifact(loaders=...)`): scikit-learn estimators
(picsift.classical) and ensembles (picsift.inference.ensemble); `picsift.inference.load_artifact` loads any.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.atomic import atomic_path
from picsift.errors import RunCorruptError, RunNotFoundError
from picsift.jsonio import write_json
from picsift.models.registry import DataConfig, create_model
from picsift.runs import ARTIFACT_DIR, ARTIFACT_META
from picsift.version import __version__

META_FILE = ARTIFACT_META
WEIGHTS_FILE = "weights.safetensors"
TORCH_FAMILIES = ("fast", "transfer", "torchvision", "timm")

# (artifact folder, its model.json, device) -> the model object of an Artifact
ModelLoader = Callable[[Path, dict[str, Any], str], Any]
# (model, artifact folder) -> extra keys for model.json (e.g. the name of the file it wrote)
ModelWriter = Callable[[Any, Path], dict[str, Any]]


@dataclass
class Artifact:
    """A loaded model: a torch module (or a classical estimator) plus what it needs to be used."""

    model_name: str
    family: str
    classes: list[str]
    data_config: DataConfig
    model_kwargs: dict[str, Any]
    model: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """K: the number of classes."""
        return len(self.classes)


def artifact_folder(path: Path) -> Path:
    """A run folder (or bundle) -> its `model/` folder; an artifact folder stays as it is."""
    path = Path(path)
    return path / ARTIFACT_DIR if (path / ARTIFACT_DIR).is_dir() else path


def save_artifact(
    run_dir: Path,
    *,
    model: Any,
    model_name: str,
    family: str,
    classes: list[str],
    data_config: DataConfig,
    model_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    write_model: ModelWriter | None = None,
) -> Path:
    """Write `run_dir/model/`: the weights (torch families) or what `write_model` writes, and model.json."""
    out = Path(run_dir) / ARTIFACT_DIR
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "picsift_version": __version__,
        "model": model_name,
        "family": family,
        "model_kwargs": model_kwargs or {},
        "classes": list(classes),
        "data_config": data_config.to_dict(),
        "extra": extra or {},
    }
    if write_model is not None:
        meta.update(write_model(model, out))
    elif family in TORCH_FAMILIES:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with atomic_path(out / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"model": model_name})
    else:
        raise ValueError(f"family {family!r} needs a write_model function")
    write_json(out / META_FILE, meta)
    return out


def read_meta(path: Path) -> dict[str, Any]:
    """model.json of a run folder, bundle or artifact folder (RunNotFoundError / RunCorruptError)."""
    meta_path = artifact_folder(path) / META_FILE
    if not meta_path.exists():
        raise RunNotFoundError(f"{path} holds no model artifact ({ARTIFACT_DIR}/{META_FILE} missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise RunCorruptError(f"cannot read the model description {meta_path}: {e}") from e
    if not isinstance(meta, dict) or not {"model", "family", "classes", "data_config"} <= set(meta):
        raise RunCorruptError(f"{meta_path} is not a picsift model description (model, family, classes, data_config)")
    return meta


def load_torch_model(folder: Path, meta: dict[str, Any], device: str = "cpu") -> Any:
    """The registry model of an artifact folder with its saved weights, in eval mode on `device`."""
    from safetensors.torch import load_file

    model = create_model(meta["model"], num_classes=len(meta["classes"]), **meta["model_kwargs"])
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device="cpu"))
    return model.to(device).eval()


def load_artifact(path: Path, device: str = "cpu", loaders: Mapping[str, ModelLoader] | None = None) -> Artifact:
    """Load from a run folder or its `model/` folder. `loaders` maps further families to their loader."""
    folder = artifact_folder(path)
    meta = read_meta(folder)
    family = meta["family"]
    if loaders is not None and family in loaders:
        model = loaders[family](folder, meta, device)
    elif family in TORCH_FAMILIES:
        model = load_torch_model(folder, meta, device)
    else:
        raise RunCorruptError(
            f"{folder} holds a {family!r} model; load it with picsift.inference.load_artifact, which knows every family"
        )
    return Artifact(
        model_name=meta["model"],
        family=family,
        classes=list(meta["classes"]),
        data_config=DataConfig.from_dict(meta["data_config"]),
        model_kwargs=dict(meta["model_kwargs"]),
        model=model,
        extra=dict(meta.get("extra", {})),
    )
