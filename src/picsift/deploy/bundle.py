"""Predict with an exported bundle: ONNX Runtime on CPU by default, or the bundled torch artifact.

The only preprocessing outside the ONNX graph is `resize_square(load_rgb(...), storage_size)`, the
same function training and the run predictor use; the graph does crop and normalisation.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from picsift.data.images import load_rgb, resize_square
from picsift.deploy.export import ARTIFACT_DIR, BUNDLE_FILE, onnx_logits, onnx_session, softmax
from picsift.deploy.predictor import Prediction, predict_files
from picsift.errors import ConfigError, RunNotFoundError
from picsift.models.registry import DataConfig

log = logging.getLogger("picsift.deploy")

RUNTIMES = ("auto", "onnx", "torch")


def read_bundle_meta(path: Path) -> dict[str, Any]:
    meta_path = Path(path) / BUNDLE_FILE
    if not meta_path.is_file():
        raise RunNotFoundError(
            f"{path} is not a picsift bundle ({BUNDLE_FILE} missing): make one with `picsift export`"
        )
    try:
        return dict(json.loads(meta_path.read_text()))
    except (OSError, ValueError) as e:
        raise RunNotFoundError(f"cannot read {meta_path}: {e}") from e


class BundlePredictor:
    """A loaded bundle. `predict_arrays` is thread-safe (ORT sessions are; torch runs under a lock)."""

    def __init__(self, path: Path, meta: dict[str, Any], runtime: str, engine: Any) -> None:
        self.path = path
        self.meta = meta
        self.runtime = runtime
        self._engine = engine
        self._lock = threading.Lock()
        self.classes: list[str] = list(meta["classes"])
        self.data_config = DataConfig.from_dict(meta["data_config"])
        self.version: str = str(meta.get("version", "unknown"))
        t = meta.get("temperature")
        self.temperature = float(t) if t else 1.0
        scales = meta.get("class_scales")  # per-class decision scales, applied before the temperature
        self.log_scales = np.log(np.asarray(scales, dtype=np.float64)) if scales else None

    @classmethod
    def load(
        cls, path: str | Path, runtime: str = "auto", threads: int | None = None, device: str = "cpu"
    ) -> BundlePredictor:
        """runtime: "onnx" (ONNX Runtime, CPU), "torch" (the bundled artifact), "auto" (ONNX if present)."""
        if runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
        path = Path(path).resolve()
        meta = read_bundle_meta(path)
        has_onnx = meta.get("format") == "onnx" and meta.get("model_file")
        if runtime == "onnx" and not has_onnx:
            raise ConfigError(f"bundle {path} has no ONNX model (format {meta.get('format')!r}); use --runtime torch")
        if runtime == "onnx" or (runtime == "auto" and has_onnx):
            model_file = path / str(meta["model_file"])
            if not model_file.is_file():
                raise RunNotFoundError(f"bundle {path} is incomplete: {model_file.name} missing")
            return cls(path, meta, "onnx", onnx_session(model_file, threads))
        from picsift.deploy.predictor import Predictor
        from picsift.models.artifact import load_artifact

        if not (path / ARTIFACT_DIR).is_dir():
            raise RunNotFoundError(f"bundle {path} carries no {ARTIFACT_DIR}/ artifact for the torch runtime")
        if threads:
            import torch

            torch.set_num_threads(threads)
        artifact = load_artifact(path / ARTIFACT_DIR, device=device)
        name = "sklearn" if artifact.family == "classical" else "torch"
        return cls(path, meta, name, Predictor(artifact, device=device))

    @property
    def storage_size(self) -> int:
        return self.data_config.storage_size

    def decode(self, source: str | Path | bytes) -> np.ndarray:
        """An image file or its bytes -> uint8 (S, S, 3): the bundle's input for one image."""
        return resize_square(load_rgb(source), self.storage_size)

    def predict_arrays(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> probabilities (N, K), with the bundle's calibrated temperature if any."""
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        if self.runtime == "onnx":
            logits = onnx_logits(self._engine, x)
            return softmax(logits if self.log_scales is None else logits + self.log_scales, self.temperature)
        with self._lock:
            probs = self._engine.predict_arrays(x)
        if self.temperature == 1.0 and self.log_scales is None:
            return np.asarray(probs, dtype=np.float32)
        z = np.log(np.clip(probs, 1e-12, None))
        return softmax(z if self.log_scales is None else z + self.log_scales, self.temperature)

    def predict_paths(self, paths: list[str], top_k: int = 1) -> list[Prediction]:
        return predict_files(self, paths, top_k)

    def info(self) -> dict[str, Any]:
        keep = (
            "model",
            "family",
            "format",
            "classes",
            "data_config",
            "source_run",
            "parity",
            "quantization",
            "temperature",
            "class_scales",
            "picsift_version",
            "created_at",
            "model_file",
        )
        return {
            "version": self.version,
            "runtime": self.runtime,
            "bundle": str(self.path),
            **{k: self.meta.get(k) for k in keep},
        }
