"""What trainers receive: plain uint8 arrays and integer labels, decoded once through the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from picsift.data.cache import DecodedCache
from picsift.errors import DatasetError
from picsift.models.registry import DataConfig
from picsift.store import ImageRow, Workspace


@dataclass
class TrainData:
    """x_*: uint8 (N, S, S, 3) at data_config.storage_size; y_*: int64 class indices into `classes`."""

    classes: list[str]
    data_config: DataConfig
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    train_ids: list[int] = field(default_factory=list)
    val_ids: list[int] = field(default_factory=list)
    sample_weight: np.ndarray | None = None  # optional per-training-image weights


@dataclass
class TrainedModel:
    """A trainer's result: the model (torch module or estimator) and how to rebuild it."""

    model: Any
    model_kwargs: dict[str, Any]
    data_config: DataConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Validation accuracy of the returned model itself, as measured while training (None: no validation images),
    # and the history epoch whose weights it holds (0: a transfer run's linear probe; None: unknown). The history
    # may hold better epochs that were not kept (the fast recipe keeps its last weights, the transfer recipe keeps
    # the probe unless an epoch beats it clearly), so its maximum is not the model's accuracy.
    val_acc: float | None = None
    kept_epoch: int | None = None


def split_rows(ws: Workspace, seed: int) -> tuple[list[ImageRow], list[ImageRow], list[ImageRow]]:
    """train / val / test rows. Without a val split, 10% of train (stratified, seeded) becomes val."""
    catalog = ws.catalog
    train = catalog.training_images("train")
    val = catalog.training_images("val")
    test = catalog.training_images("test")
    if not train:
        summary = catalog.summary()
        raise DatasetError(
            f"no labelled training images in {ws.root} (catalog has {summary['images']} images, "
            f"{summary['labeled']} labelled): import a labelled folder or label images first"
        )
    if not val:
        rng = np.random.default_rng(seed)
        by_class: dict[str, list[ImageRow]] = {}
        for r in train:
            by_class.setdefault(r.label or "", []).append(r)
        keep, val = [], []
        for rows in by_class.values():
            order = rng.permutation(len(rows))
            n_val = int(round(0.1 * len(rows))) if len(rows) >= 5 else 0
            val += [rows[i] for i in order[:n_val]]
            keep += [rows[i] for i in order[n_val:]]
        train = sorted(keep, key=lambda r: r.id)
        val = sorted(val, key=lambda r: r.id)
    return train, val, test


def load_arrays(ws: Workspace, rows: list[ImageRow], size: int, description: str) -> np.ndarray:
    """The rows' images as uint8 (N, size, size, 3), decoded once and cached; ImageDecodeError naming a
    file that is missing or does not decode."""
    cache = DecodedCache(ws.cache_dir, size)
    return cache.get_many([(r.sha256, r.path) for r in rows], description=description)


def encode_labels(rows: list[ImageRow], classes: list[str]) -> np.ndarray:
    """(M,) int64 class indices (positions in `classes`) of the labelled rows, in order; KeyError for a
    label not in `classes`."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[r.label] for r in rows if r.label is not None], dtype=np.int64)
