"""Self-describing model artifacts: `model/weights.safetensors` + `model/model.json`.

model.json holds the model name, family, constructor kwargs, class names, data config and the picsift
version: everything needed to rebuild and use the model, and nothing pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.atomic import atomic_path
from picsift.errors import RunNotFoundError
from picsift.jsonio import write_json
from picsift.models.registry import DataConfig

ARTIFACT_DIR = "model"
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


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
        return len(self.classes)


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
) -> Path:
    from picsift import __version__

    out = run_dir / ARTIFACT_DIR
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "picsift_version": __version__,
        "model": model_name,
        "family": family,
        "model_kwargs": model_kwargs or {},
        "classes": list(classes),
        "data_config": data_config.to_dict(),
        "extra": extra or {},
    }
    if family == "classical":
        from picsift.models.classical import save_estimator  # type: ignore[attr-defined]

        meta["estimator_file"] = save_estimator(model, out)
    else:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with atomic_path(out / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"model": model_name})
    write_json(out / META_FILE, meta)
    return out


def read_meta(path: Path) -> dict[str, Any]:
    folder = path / ARTIFACT_DIR if (path / ARTIFACT_DIR).is_dir() else path
    meta_path = folder / META_FILE
    if not meta_path.exists():
        raise RunNotFoundError(f"{path} holds no model artifact ({ARTIFACT_DIR}/{META_FILE} missing)")
    return json.loads(meta_path.read_text())


def load_artifact(path: Path, device: str = "cpu") -> Artifact:
    """Load from a run folder or its `model/` folder."""
    folder = path / ARTIFACT_DIR if (path / ARTIFACT_DIR).is_dir() else path
    meta = read_meta(folder)
    data_config = DataConfig.from_dict(meta["data_config"])
    if meta["family"] == "classical":
        from picsift.models.classical import load_estimator  # type: ignore[attr-defined]

        model: Any = load_estimator(folder / meta["estimator_file"])
    elif meta["family"] == "ensemble":
        from picsift.improve.ensemble import load_members

        model = load_members(folder, meta, device)
    else:
        from safetensors.torch import load_file

        from picsift.models.registry import create_model

        model = create_model(meta["model"], num_classes=len(meta["classes"]), **meta["model_kwargs"])
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device="cpu"))
        model.to(device).eval()
    return Artifact(
        model_name=meta["model"],
        family=meta["family"],
        classes=list(meta["classes"]),
        data_config=data_config,
        model_kwargs=dict(meta["model_kwargs"]),
        model=model,
        extra=dict(meta.get("extra", {})),
    )
