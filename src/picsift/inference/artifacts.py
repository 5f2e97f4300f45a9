"""Loading a model artifact of any family, and the runtime that runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from picsift.classical import load_estimator
from picsift.inference.ensemble import EnsembleRuntime
from picsift.inference.runtime import ClassicalRuntime, Runtime, TorchRuntime
from picsift.models import artifact as torch_artifacts
from picsift.models.artifact import Artifact


def _load_classical(folder: Path, meta: dict[str, Any], device: str) -> Any:
    return load_estimator(folder / meta["estimator_file"])


def load_members(folder: Path, meta: dict[str, Any], device: str = "cpu") -> list[Artifact]:
    """An ensemble artifact's members, each loaded like any artifact (the `model` of an ensemble Artifact)."""
    return [load_artifact(folder / m["dir"], device=device) for m in meta["extra"]["members"]]


LOADERS = {"classical": _load_classical, "ensemble": load_members}


def load_artifact(path: Path, device: str = "cpu") -> Artifact:
    """The artifact of a run folder, bundle or `model/` folder, whatever its family (torch, classical, ensemble)."""
    return torch_artifacts.load_artifact(Path(path), device=device, loaders=LOADERS)


def runtime_for(artifact: Artifact, device: str | torch.device = "cpu") -> Runtime:
    """The runtime of a loaded artifact: torch on `device`, scikit-learn, or an ensemble of member runtimes."""
    if artifact.family == "classical":
        return ClassicalRuntime(artifact)
    if artifact.family == "ensemble":
        members = [runtime_for(m, device) for m in artifact.model]
        return EnsembleRuntime(members, artifact.extra["weights"], artifact.classes, artifact.data_config)
    return TorchRuntime(artifact, device)
