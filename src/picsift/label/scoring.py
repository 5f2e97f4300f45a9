"""What the labelling tools know about images: the latest run's predictions and embeddings.

Both are plain arrays aligned with the catalog rows that could be read (returned with them; images whose file
is missing on disk or no longer decodes are set aside): `predict_rows` -> (N, K) probabilities,
`embed_rows` -> (N, D) float32 vectors used for clustering and for the queue's diversity term, with the name
of what produced them and the line saying why.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from picsift.data.available import SkippedImage, decode_available
from picsift.errors import PicsiftError, RunCorruptError
from picsift.features.pretrained import HAND_REASON, default_embedding
from picsift.inference import Predictor
from picsift.models.artifact import read_meta
from picsift.runs import RunFolder, list_runs, resolve_run
from picsift.store import ImageRow, Workspace

log = logging.getLogger("picsift.label")

# Downsampled pixels: the embedding of last resort (no run, no feature extractor available).
PIXEL_SIZE = 16


# Runs other commands train as candidates (`picsift compare`, `picsift tune` trials): never the default model of
# the labelling tools, which is the latest run the user trained (`picsift train`, the app's Train button).
CANDIDATE_PREFIXES = ("compare-", "tune-")
RUN_STAMP = re.compile(r"^\d{8}-\d{6}-")


def is_candidate_run(run_dir: Path) -> bool:
    """True for a run folder `<UTC stamp>-compare-...` or `<UTC stamp>-tune-...` (a candidate another command trained)."""
    return RUN_STAMP.sub("", run_dir.name).startswith(CANDIDATE_PREFIXES)


def latest_run(ws: Workspace, run: str | Path | None = None) -> Path | None:
    """The given run (RunNotFoundError when unknown), else the latest completed run the user trained (candidates
    of `compare`/`tune` skipped; the latest candidate when there is nothing else), else None when there is no run."""
    if run is not None and str(run) != "":
        return resolve_run(ws, run)
    runs = [r.path for r in list_runs(ws)]
    direct = [r for r in runs if not is_candidate_run(r)]
    pick = direct or runs
    return pick[-1] if pick else None


def run_choices(ws: Workspace) -> list[dict[str, object]]:
    """Every completed run, newest first: [{"name", "model", "val_acc", "candidate", "default"}] for the app's
    run picker; "default" marks the one `latest_run` picks."""
    default = latest_run(ws)
    out: list[dict[str, object]] = []
    for run_dir in reversed([r.path for r in list_runs(ws)]):
        try:
            meta = RunFolder(run_dir).read_record_if_any()
        except RunCorruptError:
            meta = {}
        out.append(
            {
                "name": run_dir.name,
                "model": meta.get("model") if isinstance(meta, dict) else None,
                "val_acc": meta.get("best_val_acc") if isinstance(meta, dict) else None,
                "candidate": is_candidate_run(run_dir),
                "default": default is not None and run_dir == default,
            }
        )
    return out


def predict_rows(
    ws: Workspace, rows: list[ImageRow], run_dir: Path
) -> tuple[list[ImageRow], np.ndarray, list[str], list[SkippedImage]]:
    """-> (the rows that could be read, their probabilities (N, K) under the run's model, its class names
    (column order), the rows set aside because their file is missing on disk or no longer decodes)."""
    predictor = Predictor.from_run(run_dir)
    k = len(predictor.classes)
    decoded = decode_available(ws.cache_dir, rows, predictor.data_config.storage_size, "decoding for predictions")
    if not decoded.rows:
        return [], np.zeros((0, k), dtype=np.float32), list(predictor.classes), decoded.skipped
    return decoded.rows, predictor.predict_arrays(decoded.x), list(predictor.classes), decoded.skipped


def pixel_embeddings(ws: Workspace, rows: list[ImageRow]) -> tuple[list[ImageRow], np.ndarray, list[SkippedImage]]:
    """Downsampled, per-image standardised pixels: (rows that decoded, (N, 16*16*3) float32, rows set aside)."""
    decoded = decode_available(ws.cache_dir, rows, PIXEL_SIZE, "decoding pixels")
    if not decoded.rows:
        return [], np.zeros((0, PIXEL_SIZE * PIXEL_SIZE * 3), dtype=np.float32), decoded.skipped
    flat = decoded.x.reshape(len(decoded.x), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= flat.std(axis=1, keepdims=True) + 1e-6
    return decoded.rows, flat, decoded.skipped


@dataclass
class EmbeddedRows:
    """rows: the rows that could be read; vectors: their embeddings, float32 (N, D); name: what produced them
    (an extractor name or "pixels"); text: the line recording that choice and why; skipped: rows set aside
    because their file is missing on disk or no longer decodes."""

    rows: list[ImageRow]
    vectors: np.ndarray
    name: str
    text: str
    skipped: list[SkippedImage] = field(default_factory=list)


def embed_rows(ws: Workspace, rows: list[ImageRow], extractor: str | None = None) -> EmbeddedRows:
    """Embeddings of `rows` (see EmbeddedRows).

    `extractor` None picks the best available: a pretrained backbone when its weights are installed
    (`picsift.features.default_embedding`), else the latest run's penultimate layer, else HOG descriptors,
    else downsampled pixels (when the features stage is unavailable or fails).
    """
    if extractor == "pixels":
        kept, vectors, skipped = pixel_embeddings(ws, rows)
        return EmbeddedRows(kept, vectors, "pixels", "pixels: chosen", skipped)
    candidates: list[tuple[str, str]] = [(extractor, f"features: {extractor} (chosen)")] if extractor else []
    if not extractor:
        choice = default_embedding(fallback="hog")
        if choice.pretrained:
            candidates.append((choice.extractor, choice.text))
        reason = choice.text.removeprefix("hand features: ") if not choice.pretrained else "pretrained failed"
        run_dir = latest_run(ws)
        if run_dir is not None:
            candidates.append((f"run:{run_dir}", f"run features: penultimate layer of {run_dir.name}; {reason}"))
        candidates.append(("hog", f"hand features: {reason}"))
    try:
        from picsift.features import extract_available
    except ImportError:
        if extractor:
            raise
        kept, vectors, skipped = pixel_embeddings(ws, rows)
        return EmbeddedRows(kept, vectors, "pixels", f"pixels: the features stage is unavailable; {HAND_REASON}",
                            skipped)  # fmt: skip
    for name, text in candidates:
        try:
            kept, emb, skipped = extract_available(ws, rows, name)
            log.info("%s", text)
            return EmbeddedRows(kept, np.asarray(emb, dtype=np.float32), name, text, skipped)
        except PicsiftError:
            if extractor:
                raise
            log.warning("embeddings with %s failed; trying the next extractor", name, exc_info=True)
    kept, vectors, skipped = pixel_embeddings(ws, rows)
    return EmbeddedRows(kept, vectors, "pixels", "pixels: every feature extractor failed", skipped)


class PredictionCache:
    """Per-run probabilities of catalog images, computed once per (run, image) for the web app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: str | None = None
        self._classes: list[str] = []
        self._probs: dict[int, np.ndarray] = {}

    def get(
        self, ws: Workspace, rows: list[ImageRow], run: str | None = None
    ) -> tuple[dict[int, np.ndarray], list[str], str | None]:
        """{image id: probabilities} for `rows` under `run` (default: `latest_run`), its classes and its name;
        ({}, [], None) without a run. RunNotFoundError for an unknown `run`."""
        run_dir = latest_run(ws, run)
        if run_dir is None:
            return {}, [], None
        with self._lock:
            if self._run != run_dir.name:
                self._run, self._probs, self._classes = run_dir.name, {}, []
            missing = [r for r in rows if r.id not in self._probs and r.readable]
            if missing:  # images whose file is gone or no longer decodes get no prediction
                scored, probs, self._classes, _ = predict_rows(ws, missing, run_dir)
                self._probs.update({r.id: p for r, p in zip(scored, probs, strict=True)})
            elif not self._classes:
                self._classes = list(read_meta(run_dir)["classes"])
            return {r.id: self._probs[r.id] for r in rows if r.id in self._probs}, self._classes, self._run
