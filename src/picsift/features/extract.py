"""`extract(ws, rows, extractor)`: catalog rows -> (N, D) float32 features, cached by (extractor, image sha256)."""

from __future__ import annotations

import logging

import numpy as np

from picsift.data.cache import DecodedCache
from picsift.features.extractors import Extractor, get_extractor
from picsift.features.store import FeatureStore
from picsift.store import ImageRow, Workspace

log = logging.getLogger("picsift.features")

# Missing images are decoded and featurised in chunks so memory stays bounded on large catalogs.
CHUNK = 2048


def extract(ws: Workspace, rows: list[ImageRow], extractor: str | Extractor) -> np.ndarray:
    """Features of `rows` in order: float32 (N, D). Computed once per (extractor, image bytes), then cached
    in `<workspace>/cache/features/`; pixels come from the decoded-image cache at the extractor's size."""
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor, ws)
    store = FeatureStore(ws.cache_dir, ext.key)
    shas = [r.sha256 for r in rows]
    found = store.get(shas)
    first_path: dict[str, str] = {}
    for r in rows:
        if r.sha256 not in found:
            first_path.setdefault(r.sha256, r.path)
    missing = list(first_path.items())
    if missing:
        log.info("%s: computing features for %d images (%d cached)", ext.name, len(missing), len(found))
        pixels = DecodedCache(ws.cache_dir, ext.size)
        for i in range(0, len(missing), CHUNK):
            chunk = missing[i : i + CHUNK]
            x = pixels.get_many(chunk, description=f"decoding for {ext.name}")
            feats = ext(x)
            store.put([sha for sha, _ in chunk], feats)
            found.update({sha: f for (sha, _), f in zip(chunk, feats, strict=True)})
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[s] for s in shas]).astype(np.float32, copy=False)


def extract_arrays(x: np.ndarray, extractor: str | Extractor, *, workspace: Workspace | None = None) -> np.ndarray:
    """In-memory images: uint8 (N, S, S, 3) -> float32 (N, D); no cache. `workspace` resolves run:RUN ids."""
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor, workspace)
    return ext(x)
