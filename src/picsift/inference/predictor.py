"""The Predictor: a model's runtime plus its inference spec, applied the same way for every caller.

uint8 images (N, S, S, 3) at the model's storage size (the cached form, `decode`'s output) -> the runtime's
scores -> test-time views averaged (when asked) -> class scales -> temperature -> probabilities (N, K), and,
when asked, unknown rejection. It never fits and never writes: the settings come from the spec that
picsift.improve fitted (inference.json of a run, or a bundle's copy). Runtimes: torch, scikit-learn, ensembles
(from a run's artifact) and ONNX (from a bundle, built by picsift.deploy.bundle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsift.data.images import load_rgb, resize_square
from picsift.data.storage import is_remote
from picsift.errors import ConfigError, ImageDecodeError, RunCorruptError
from picsift.inference.artifacts import load_artifact, runtime_for
from picsift.inference.postprocess import Scores, finish
from picsift.inference.runtime import Runtime
from picsift.inference.spec import InferenceSpec, read_spec
from picsift.inference.tta import DEFAULT_VIEW_SET, ViewSet, average_logits, average_probs, view_set
from picsift.inference.unknown import UnknownRejector
from picsift.models.artifact import Artifact
from picsift.models.registry import DataConfig
from picsift.runs import RunFolder

log = logging.getLogger("picsift.inference")

PREDICT_CHUNK = 256  # images decoded and predicted together by predict_files


@dataclass
class Prediction:
    """The prediction for one file: the top (class, probability) pairs, or the error that kept it from being read."""

    path: str
    top: list[tuple[str, float]]  # (class, probability), best first
    error: str | None = None
    rejected: bool = False  # set by unknown rejection: the label becomes "unknown"

    def to_dict(self) -> dict[str, Any]:
        """{path, label, confidence, top_k: [{label, probability}]} (label "unknown" and rejected=True when
        rejected), or {path, error} for an unreadable file."""
        if self.error:
            return {"path": self.path, "error": self.error}
        out: dict[str, Any] = {"path": self.path, "label": self.top[0][0], "confidence": self.top[0][1]}
        if self.rejected:
            out.update(label="unknown", rejected=True)
        out["top_k"] = [{"label": c, "probability": p} for c, p in self.top]
        return out


def chosen_views(spec: InferenceSpec, where: str) -> ViewSet:
    """The test-time views `--tta` uses: the spec's chosen ones, else the default set (and a warning saying so)."""
    if spec.tta_views:
        return ViewSet.equal("chosen", spec.tta_views)
    log.warning(
        "%s has no chosen test-time views (choose them with `picsift calibrate --tta`); using the default "
        "view set %r (the image and its mirror)",
        where,
        DEFAULT_VIEW_SET,
    )
    return view_set(DEFAULT_VIEW_SET)


def fitted_rejector(spec: InferenceSpec, bank_path: Path, where: str, how_to_fit: str) -> UnknownRejector:
    """The spec's unknown rejector with its bank; ConfigError saying how to fit one when the spec has none."""
    if spec.unknown is None:
        raise ConfigError(f"{where} has no fitted unknown rejection: {how_to_fit}")
    return UnknownRejector.load(spec.unknown, bank_path)


class Predictor:
    """A runtime with its inference spec. `views`: the active test-time views (None: no TTA); `rejector`: the
    active unknown rejector (None: no rejection). Build one with `from_run`, `from_artifact` or (for bundles)
    picsift.deploy.bundle.load_bundle."""

    def __init__(
        self,
        runtime: Runtime,
        spec: InferenceSpec | None = None,
        *,
        views: ViewSet | None = None,
        rejector: UnknownRejector | None = None,
        artifact: Artifact | None = None,
    ) -> None:
        self.runtime = runtime
        self.spec = spec or InferenceSpec()
        self.views = views
        self.rejector = rejector
        self.artifact = artifact
        self.classes: list[str] = list(runtime.classes)
        self.data_config: DataConfig = runtime.data_config
        scales = self.spec.class_scales
        if scales is not None and len(scales) != len(self.classes):
            raise RunCorruptError(
                f"the inference spec has {len(scales)} class scales for {len(self.classes)} classes: "
                "refit them with `picsift calibrate --thresholds macro-f1`"
            )

    @classmethod
    def from_artifact(cls, artifact: Artifact, device: str = "cpu", spec: InferenceSpec | None = None) -> Predictor:
        """A Predictor for a loaded model artifact on `device`, with `spec` (default: applies nothing).
        RunCorruptError when the spec's class scales do not match the classes."""
        return cls(runtime_for(artifact, device), spec, artifact=artifact)

    @classmethod
    def from_run(
        cls, run: RunFolder | str | Path, device: str = "cpu", *, tta: bool = False, reject_unknown: bool = False
    ) -> Predictor:
        """The run's model with its inference spec. tta: its chosen test-time views (the default set, with a
        warning, when none were chosen); reject_unknown: its fitted unknown rejector (ConfigError when there is
        none). Reads the run folder and nothing else."""
        run = run if isinstance(run, RunFolder) else RunFolder(Path(run))
        spec = read_spec(run)
        where = f"run {run.name}"
        predictor = cls.from_artifact(load_artifact(run.path, device=device), device, spec)
        if tta:
            predictor.views = chosen_views(spec, where)
        if reject_unknown:
            predictor.rejector = fitted_rejector(
                spec, run.unknown_bank_path, where, f"fit it with `picsift calibrate --run {run.path}`"
            )
        return predictor

    # ---- variants (sharing the loaded model) ----------------------------------------------------------
    def with_spec(self, spec: InferenceSpec) -> Predictor:
        """The same model with another spec (e.g. without the temperature, to fit one)."""
        return Predictor(self.runtime, spec, views=self.views, rejector=self.rejector, artifact=self.artifact)

    def with_views(self, views: ViewSet | None) -> Predictor:
        """The same model and spec with other test-time views (None: none)."""
        return Predictor(self.runtime, self.spec, views=views, rejector=self.rejector, artifact=self.artifact)

    @property
    def temperature(self) -> float | None:
        """The spec's calibration temperature (None: none)."""
        return self.spec.temperature

    @property
    def class_scales(self) -> tuple[float, ...] | None:
        """The spec's per-class probability scales (K,) (None: none)."""
        return self.spec.class_scales

    @property
    def tta_views(self) -> list[str] | None:
        """The names of the active test-time views (None: no TTA)."""
        return list(self.views.views) if self.views is not None else None

    # ---- predicting ------------------------------------------------------------------------------------
    def decode(self, source: str | Path | bytes) -> np.ndarray:
        """An image file or its bytes -> uint8 (S, S, 3) at the model's storage size."""
        return resize_square(load_rgb(source), self.data_config.storage_size)

    def predict_raw(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The model's own probabilities for uint8 (N, S, S, 3): float32 (N, K), no TTA, no spec."""
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self.runtime.scores(x, batch_size).probs().astype(np.float32)

    def scores(self, x: np.ndarray, batch_size: int = 256) -> Scores:
        """The runtime's scores for uint8 (N, S, S, 3), averaged over the active test-time views."""
        if self.views is None:
            return self.runtime.scores(x, batch_size)
        if self.views.average == "logits":
            return Scores(average_logits(lambda v: self.runtime.scores(v, batch_size).log(), x, self.views), True)
        return Scores(average_probs(lambda v: self.runtime.scores(v, batch_size).probs(), x, self.views), False)

    def predict_arrays(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, S, S, 3) at storage size -> float32 probabilities (N, K): TTA, class scales, temperature."""
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return finish(self.scores(x, batch_size), self.spec.class_scales, self.spec.temperature)

    def features(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """(L2-normalised features (N, D), logits (N, K) or None) of uint8 (N, S, S, 3); see the runtime."""
        return self.runtime.features(x, batch_size)

    def rejected(self, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Bool (N,): True where the active unknown rejector calls the image unknown (all False without one).
        `probs` are this predictor's `predict_arrays(x)`."""
        if self.rejector is None or len(x) == 0:
            return np.zeros(len(x), dtype=bool)
        feats, _ = self.features(x)
        return self.rejector.rejects(feats, probs)

    def predict_paths(self, paths: list[str], top_k: int = 1) -> list[Prediction]:
        """Predict image files: one Prediction per path, in order, with the top_k classes (unreadable files
        carry their error)."""
        return predict_files(self, paths, top_k)


def top_classes(probs: np.ndarray, classes: list[str], top_k: int) -> list[tuple[str, float]]:
    """One probability row (K,) -> the top_k (class, probability) pairs, best first."""
    k = max(1, min(top_k, len(classes)))
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[j], float(probs[j])) for j in order]


def predict_files(predictor: Predictor, paths: list[str], top_k: int = 1) -> list[Prediction]:
    """Decode files with `predictor.decode`, predict the readable ones in chunks, report the rest per file."""
    results: list[Prediction] = []
    # Decode and predict in chunks so a folder of 100,000 photos never sits in memory at once.
    for start in range(0, len(paths), PREDICT_CHUNK):
        arrays, ok = [], []
        for i, path in enumerate(paths[start : start + PREDICT_CHUNK], start=start):
            try:
                if not is_remote(path) and not Path(path).is_file():  # a URL is read (or fails) in `decode`
                    raise ImageDecodeError("no such file" if not Path(path).exists() else "not a file")
                arrays.append(predictor.decode(path))
                ok.append(i)
                results.append(Prediction(path, []))
            except (ImageDecodeError, OSError, ValueError) as e:
                results.append(Prediction(path, [], error=str(e) or type(e).__name__))
        if arrays:
            batch = np.stack(arrays)
            probs = predictor.predict_arrays(batch)
            rejected = predictor.rejected(batch, probs)
            for row, i, flag in zip(probs, ok, rejected, strict=True):
                results[i].top = top_classes(row, predictor.classes, top_k)
                results[i].rejected = bool(flag)
    return results
