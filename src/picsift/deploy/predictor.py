"""Predict with a run's artifact: the same preprocessing as training (DataConfig), torch runtime.

`Predictor.predict_arrays` takes uint8 (N, S, S, 3) at the storage size (the cached form);
`Predictor.predict_paths` decodes files first and reports unreadable ones per file.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift.data.formats import describe
from picsift.data.images import load_rgb, resize_square
from picsift.data.walk import SkippedFile, WalkResult, count_by_kind, walk_images
from picsift.errors import DatasetError, ImageDecodeError, RunNotFoundError
from picsift.models.artifact import Artifact, load_artifact


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), best first
    error: str | None = None
    rejected: bool = False  # set by unknown rejection (picsift.improve.unknown): label becomes "unknown"

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": self.path, "error": self.error}
        if self.rejected:
            return {
                "path": self.path,
                "label": "unknown",
                "confidence": self.top[0][1],
                "rejected": True,
                "top_k": [{"label": c, "probability": p} for c, p in self.top],
            }
        return {
            "path": self.path,
            "label": self.top[0][0],
            "confidence": self.top[0][1],
            "top_k": [{"label": c, "probability": p} for c, p in self.top],
        }


PREDICT_CHUNK = 256  # images decoded and predicted together by predict_files


@dataclass
class InputFiles:
    """The files to predict, in order, and what the folders and patterns held that is not an image
    (hidden files, other suffixes, broken links, link loops), each with why."""

    paths: list[str]
    skipped: list[SkippedFile]


def _skipped_note(skipped: list[SkippedFile]) -> str:
    if not skipped:
        return ""
    kinds = ", ".join(f"{kind} {n}" for kind, n in count_by_kind(skipped).items())
    return f"; skipped {len(skipped)}: {kinds}"


def collect_inputs(inputs: list[str]) -> InputFiles:
    """Files, folders and glob patterns -> the image files to predict, and what was skipped.

    Folders (and the folders and files a pattern matches) are walked by `picsift.data.walk`, the same
    walk `picsift import` uses: the same formats, hidden folders left out, links followed with loop
    protection. An existing path is taken literally even if its name holds glob characters
    (`photo[1].jpg`), and a file named explicitly is always predicted (a bad one is reported per
    file). A folder or pattern that yields no image is a DatasetError, so a typo never passes as
    "0 predictions". A path that does not exist is kept: the predictor reports it ("no such file").
    """
    out = InputFiles([], [])
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = walk_images(p)
            out.skipped += found.skipped
            if not found.images:
                raise DatasetError(
                    f"folder {item!r} holds no image files (looked for {describe()}, recursively)"
                    + _skipped_note(found.skipped)
                )
            out.paths += [str(f) for f in found.images]
        elif p.exists() or not any(ch in item for ch in "*?["):
            out.paths.append(item)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise DatasetError(f"pattern {item!r} matched no files")
            found = WalkResult()
            for m in matches:
                found.extend(walk_images(Path(m)))
            out.skipped += found.skipped
            images = list(dict.fromkeys(str(f) for f in found.images))  # `**` matches a folder and its files
            if not images:
                raise DatasetError(f"pattern {item!r} matched no image files" + _skipped_note(found.skipped))
            out.paths += images
    return out


def expand_inputs(inputs: list[str]) -> list[str]:
    """The image files `collect_inputs` finds, without the skipped ones."""
    return collect_inputs(inputs).paths


class Predictor:
    def __init__(self, artifact: Artifact, device: str = "cpu") -> None:
        self.artifact = artifact
        self.device = torch.device(device)
        self.classes = artifact.classes
        self.data_config = artifact.data_config
        # Improve stage (picsift.improve): temperature from calibration.json, TTA views, unknown rejector.
        self.temperature: float | None = None
        self.tta_views: list[str] | None = None
        self.rejector: Any = None  # callable (arrays, probs) -> bool mask of rejected images
        self.class_scales: np.ndarray | None = None  # per-class decision scales from thresholds.json

    @classmethod
    def from_run(cls, run_dir: Path, device: str = "cpu") -> Predictor:
        from picsift.improve.calibration import read_temperature

        predictor = cls(load_artifact(run_dir, device=device), device=device)
        predictor.temperature = read_temperature(run_dir)
        from picsift.improve.thresholds import read_class_scales

        scales = read_class_scales(run_dir)
        if scales is not None and len(scales) != len(predictor.classes):
            raise RunNotFoundError(
                f"{run_dir}/thresholds.json has {len(scales)} scales for {len(predictor.classes)} classes: "
                "refit it with `picsift calibrate --thresholds macro-f1`"
            )
        predictor.class_scales = scales
        return predictor

    def enable_tta(self, run_dir: Path | None = None, views: list[str] | None = None) -> None:
        """Average over test-time views: given ones, else the run's tta.json choice, else flip."""
        from picsift.improve.tta import DEFAULT_VIEWS, views_for_run

        self.tta_views = views or (views_for_run(run_dir) if run_dir is not None else list(DEFAULT_VIEWS))

    def predict_arrays(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, S, S, 3) at storage size -> probabilities (N, K) float32 (TTA, class scales, temperature)."""
        if self.tta_views:
            from picsift.improve.tta import predict_tta

            probs = predict_tta(lambda v: self.predict_raw(v, batch_size), x, self.tta_views)
        else:
            probs = self.predict_raw(x, batch_size)
        if self.class_scales is not None:  # before the temperature: the decision then ignores T
            from picsift.improve.thresholds import apply_class_scales

            probs = apply_class_scales(probs, self.class_scales)
        if self.temperature is not None:
            from picsift.improve.calibration import apply_temperature

            probs = apply_temperature(probs, self.temperature)
        return probs

    def predict_raw(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The model's own probabilities for uint8 (N, S, S, 3): no TTA, no temperature."""
        if self.artifact.family == "ensemble":
            from picsift.improve.ensemble import predict_ensemble

            return predict_ensemble(self.artifact, x, self.device, batch_size)
        if self.artifact.family == "classical":
            from picsift.models.classical import predict_proba_arrays  # type: ignore[attr-defined]

            return np.asarray(predict_proba_arrays(self.artifact, x), dtype=np.float32)
        from picsift.train.loop import predict_logits

        logits = predict_logits(self.artifact.model, x, self.data_config, self.device, batch_size, amp=False)
        return torch.softmax(logits, dim=1).numpy().astype(np.float32)

    def decode(self, source: str | Path | bytes) -> np.ndarray:
        return resize_square(load_rgb(source), self.data_config.storage_size)

    def predict_paths(self, paths: list[str], top_k: int = 1) -> list[Prediction]:
        return predict_files(self, paths, top_k)


def top_classes(probs: np.ndarray, classes: list[str], top_k: int) -> list[tuple[str, float]]:
    """One probability row (K,) -> the top_k (class, probability) pairs, best first."""
    k = max(1, min(top_k, len(classes)))
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[j], float(probs[j])) for j in order]


def predict_files(predictor: Any, paths: list[str], top_k: int = 1) -> list[Prediction]:
    """Decode files with `predictor.decode`, predict the readable ones in one batch, report the rest.

    Shared by the run predictor and the bundle predictor, so both give the same output.
    """
    results: list[Prediction] = []
    # Decode and predict in chunks so a folder of 100,000 photos never sits in memory at once.
    for start in range(0, len(paths), PREDICT_CHUNK):
        arrays, ok = [], []
        for i, path in enumerate(paths[start : start + PREDICT_CHUNK], start=start):
            try:
                if not Path(path).is_file():
                    raise ImageDecodeError("no such file" if not Path(path).exists() else "not a file")
                arrays.append(predictor.decode(path))
                ok.append(i)
                results.append(Prediction(path, []))
            except (ImageDecodeError, OSError, ValueError) as e:
                results.append(Prediction(path, [], error=str(e) or type(e).__name__))
        if arrays:
            batch = np.stack(arrays)
            probs = predictor.predict_arrays(batch)
            rejector = getattr(predictor, "rejector", None)  # unknown rejection (picsift.improve.unknown)
            rejected = rejector(batch, probs) if rejector is not None else np.zeros(len(ok), bool)
            for row, i, flag in zip(probs, ok, rejected, strict=True):
                results[i].top = top_classes(row, predictor.classes, top_k)
                results[i].rejected = bool(flag)
    return results
