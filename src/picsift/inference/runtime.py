"""Runtimes: what runs a model on uint8 images (N, S, S, 3) at its storage size.

Each gives `scores` (logits where the model has them, else probabilities) and `features` (L2-normalised
vectors unknown rejection and drift compare; (N, D)). Torch modules and scikit-learn estimators come from a
run's artifact; ONNX sessions from an exported bundle. Ensembles: picsift.inference.ensemble.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from picsift.classical import predict_proba_arrays
from picsift.errors import ConfigError
from picsift.inference.postprocess import Scores
from picsift.models.artifact import Artifact
from picsift.models.forward import forward, has_linear_head
from picsift.models.registry import DataConfig

# The ONNX graph's input and output (picsift.deploy.export writes graphs with these names).
ONNX_INPUT = "pixels"
ONNX_OUTPUT = "logits"


class Runtime(Protocol):
    """What a Predictor runs: a model taking uint8 (N, S, S, 3) images at `data_config.storage_size`."""

    name: str  # "torch" | "sklearn" | "onnx" | "ensemble"
    classes: list[str]
    data_config: DataConfig

    def scores(self, x: np.ndarray, batch_size: int = 256) -> Scores:
        """uint8 (N, S, S, 3) -> scores (N, K): logits or probabilities, as `Scores.logits` says."""

    def features(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (N, S, S, 3) -> (L2-normalised features (N, D), logits (N, K) or None)."""


def probability_features(probs: np.ndarray) -> np.ndarray:
    """Stand-in features for models without a feature layer: sqrt(p), a point on the unit sphere. (N, K)."""
    return np.sqrt(np.clip(np.asarray(probs, dtype=np.float64), 0, 1)).astype(np.float32)


class TorchRuntime:
    """A torch module on a device; calls are serialised (a module is not safe to run from two threads)."""

    name = "torch"

    def __init__(self, artifact: Artifact, device: str | torch.device = "cpu") -> None:
        self.artifact = artifact
        self.classes = list(artifact.classes)
        self.data_config = artifact.data_config
        self.device = torch.device(device)
        self._lock = threading.Lock()

    def scores(self, x: np.ndarray, batch_size: int = 256) -> Scores:
        """Logits (N, K) float32."""
        with self._lock:
            out = forward(self.artifact.model, x, self.data_config, self.device, batch_size=batch_size)
        return Scores(out.logits.numpy().reshape(len(x), -1), logits=True)

    def features(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """(L2-normalised penultimate features (N, D), logits (N, K)): the input of the last nn.Linear, caught
        in the same pass; sqrt of the probabilities for a module without a linear head."""
        model = self.artifact.model
        if not has_linear_head(model):
            return probability_features(self.scores(x, batch_size).probs()), None
        with self._lock:
            out = forward(model, x, self.data_config, self.device, batch_size=batch_size, features=True)
        caught = out.features if out.features is not None else torch.zeros((len(x), 0))
        feats = torch.nn.functional.normalize(caught, dim=1).numpy().astype(np.float32)
        return feats, out.logits.numpy()


class ClassicalRuntime:
    """A scikit-learn estimator mapping uint8 images to probabilities (picsift.classical)."""

    name = "sklearn"

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.classes = list(artifact.classes)
        self.data_config = artifact.data_config
        self._lock = threading.Lock()

    def scores(self, x: np.ndarray, batch_size: int = 256) -> Scores:
        """uint8 (N, S, S, 3) -> the estimator's probabilities (N, K)."""
        with self._lock:  # a deep feature extractor inside holds a torch module
            return Scores(predict_proba_arrays(self.artifact, x), logits=False)

    def features(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """(sqrt of the probabilities (N, K) as stand-in features, None): the estimator has no feature layer."""
        return probability_features(self.scores(x, batch_size).probs()), None


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for the model file at `path`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # No busy-waiting between runs: in a server the same cores decode images and parse HTTP.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_logits(session: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, S, S, 3) through an exported graph -> float32 logits (N, K)."""
    outs = [
        session.run([ONNX_OUTPUT], {ONNX_INPUT: np.ascontiguousarray(x[i : i + batch_size])})[0]
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, 0), np.float32)


class OnnxRuntime:
    """An exported graph (crop and normalisation inside) on ONNX Runtime; sessions are thread-safe."""

    name = "onnx"

    def __init__(self, session: Any, classes: list[str], data_config: DataConfig) -> None:
        self.session = session
        self.classes = list(classes)
        self.data_config = data_config

    def scores(self, x: np.ndarray, batch_size: int = 256) -> Scores:
        """uint8 (N, S, S, 3) -> float32 logits (N, K) from the exported graph."""
        if len(x) == 0:
            return Scores(np.zeros((0, len(self.classes)), np.float32), logits=True)
        return Scores(onnx_logits(self.session, x, batch_size), logits=True)

    def features(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """Always raises ConfigError: an exported graph gives logits only (use the torch runtime for features)."""
        raise ConfigError(
            "the ONNX model gives logits only, and unknown rejection needs the model's features: "
            "load the bundle with runtime torch (`--runtime torch`)"
        )
