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

from picsift.data.images import IMAGE_EXTENSIONS, load_rgb, resize_square
from picsift.errors import DatasetError, ImageDecodeError
from picsift.models.artifact import Artifact, load_artifact


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), best first
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": self.path, "error": self.error}
        return {
            "path": self.path,
            "label": self.top[0][0],
            "confidence": self.top[0][1],
            "top_k": [{"label": c, "probability": p} for c, p in self.top],
        }


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files, folders (recursively, image extensions) and glob patterns -> file paths, in order."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise DatasetError(f"pattern {item!r} matched no files")
            out += [m for m in matches if Path(m).is_file()]
        else:
            out.append(item)
    return out


class Predictor:
    def __init__(self, artifact: Artifact, device: str = "cpu") -> None:
        self.artifact = artifact
        self.device = torch.device(device)
        self.classes = artifact.classes
        self.data_config = artifact.data_config

    @classmethod
    def from_run(cls, run_dir: Path, device: str = "cpu") -> Predictor:
        return cls(load_artifact(run_dir, device=device), device=device)

    def predict_arrays(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, S, S, 3) at storage size -> probabilities (N, K) float32."""
        if self.artifact.family == "classical":
            from picsift.models.classical import predict_proba_arrays  # type: ignore[attr-defined]

            return np.asarray(predict_proba_arrays(self.artifact, x), dtype=np.float32)
        from picsift.train.loop import predict_logits

        logits = predict_logits(self.artifact.model, x, self.data_config, self.device, batch_size, amp=False)
        return torch.softmax(logits, dim=1).numpy().astype(np.float32)

    def decode(self, source: str | Path | bytes) -> np.ndarray:
        return resize_square(load_rgb(source), self.data_config.storage_size)

    def predict_paths(self, paths: list[str], top_k: int = 1) -> list[Prediction]:
        arrays, ok, results = [], [], []
        for i, path in enumerate(paths):
            try:
                if not Path(path).is_file():
                    raise ImageDecodeError("no such file")
                arrays.append(self.decode(path))
                ok.append(i)
                results.append(Prediction(path, []))
            except (ImageDecodeError, OSError) as e:
                results.append(Prediction(path, [], error=str(e)))
        if arrays:
            probs = self.predict_arrays(np.stack(arrays))
            k = max(1, min(top_k, len(self.classes)))
            for row, i in zip(probs, ok, strict=True):
                order = np.argsort(-row)[:k]
                results[i].top = [(self.classes[j], float(row[j])) for j in order]
        return results
