"""Embeddings of training and validation images, cached per (backbone, weights, data config, image sha256).

They live in the workspace's feature store (`picsift.features.store`, one SQLite file per key under
`cache/features/`), so a second run on the same images at the same resolution embeds nothing, and so does
`auto`'s probe when the recipe later uses its resolution.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from picsift import progress
from picsift.features.store import FeatureStore
from picsift.models.pretrained import Embedder, PretrainedWeights, sha256_file
from picsift.models.registry import DataConfig
from picsift.store import Workspace

log = logging.getLogger("picsift.train")
BATCH = 32


def weights_id(found: PretrainedWeights) -> str:
    """A short digest of the weights file (16 hex characters of its known SHA-256, else of one computed now), so
    other weights never share rows; the source text when there is no file (timm's own download). Raises OSError
    when an unhashed file cannot be read."""
    if found.expected_sha256:
        return found.expected_sha256[:16]
    if found.path is not None:
        return sha256_file(found.path)[:16]
    return found.source


def cache_key(name: str, found: PretrainedWeights, dc: DataConfig) -> str:
    """The feature store key of a backbone's embeddings at one data config (pixels in -> vector out)."""
    return (
        f"pretrained:{name}:{weights_id(found)}:{dc.input_size}px:storage{dc.storage_size}:"
        f"{dc.interpolation}:mean{','.join(f'{m:g}' for m in dc.mean)}:std{','.join(f'{s:g}' for s in dc.std)}"
    )


@dataclass
class EmbedStats:
    """How the embedding pass went: images embedded now and found cached, and its speed (None if all cached)."""

    computed: int
    cached: int
    seconds: float

    @property
    def images_per_s(self) -> float | None:
        """Images embedded per second of wall time in this pass; None when nothing was embedded (all cached)."""
        return self.computed / self.seconds if self.computed and self.seconds > 0 else None


def cached_embeddings(
    ws: Workspace, key: str, shas: list[str], x: np.ndarray, embedder: Embedder, description: str
) -> tuple[np.ndarray, EmbedStats]:
    """float32 (N, D) embeddings of uint8 images `x` (N, S, S, 3) whose content hashes are `shas`, rows in order.

    Rows already in the store under `key` are read; the others are embedded in batches of BATCH and stored.
    Returns the embeddings and an EmbedStats; (0, 0) embeddings for no images. Raises ConfigError (from the
    embedder) for images that are not uint8 (N, H, W, 3).
    """
    store = FeatureStore(ws.cache_dir, key)
    found = store.get(shas)
    todo = [i for i, sha in enumerate(shas) if sha not in found]
    t0 = time.perf_counter()
    if todo:
        index = np.array(todo)
        batches = range(0, len(index), BATCH)
        parts = [embedder(x[index[i : i + BATCH]]) for i in progress.track(batches, description, total=len(batches))]
        new = np.concatenate(parts)
        store.put([shas[i] for i in todo], new)
        for i, f in zip(todo, new, strict=True):
            found[shas[i]] = f
    seconds = time.perf_counter() - t0
    if not shas:
        return np.zeros((0, 0), np.float32), EmbedStats(0, 0, 0.0)
    out = np.stack([found[sha] for sha in shas]).astype(np.float32, copy=False)
    log.info("%s: %d embedded in %.1f s, %d cached", description, len(todo), seconds, len(shas) - len(todo))
    return out, EmbedStats(len(todo), len(shas) - len(todo), seconds)
