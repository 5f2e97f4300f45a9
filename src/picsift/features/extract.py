"""`extract(ws, rows, extractor)`: catalog rows -> (N, D) float32 features, cached by (extractor, image sha256)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from picsift.data.available import UNDECODABLE, R, SkippedImage, split_present
from picsift.data.cache import DecodedCache
from picsift.errors import ImageDecodeError
from picsift.features.extractors import Extractor, get_extractor
from picsift.features.store import FeatureStore
from picsift.store import Workspace

log = logging.getLogger("picsift.features")

# Missing images are decoded and featurised in chunks so memory stays bounded on large catalogs.
CHUNK = 2048


def _features(ws: Workspace, rows: Sequence[R], ext: Extractor) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """({sha256: feature vector} for every row that has or gets one, {sha256: why not} for images that did not
    decode). New vectors are added to the feature cache."""
    store = FeatureStore(ws.cache_dir, ext.key)
    found = store.get([r.sha256 for r in rows])
    first_path: dict[str, str] = {}
    for r in rows:
        if r.sha256 not in found:
            first_path.setdefault(r.sha256, r.path)
    todo = list(first_path.items())
    failed: dict[str, str] = {}
    if todo:
        log.info("%s: computing features for %d images (%d cached)", ext.name, len(todo), len(found))
        pixels = DecodedCache(ws.cache_dir, ext.size)
        for i in range(0, len(todo), CHUNK):
            chunk = todo[i : i + CHUNK]
            x, bad = pixels.get_available(chunk, description=f"decoding for {ext.name}")
            failed.update({chunk[j][0]: why for j, why in bad.items()})
            done = [sha for j, (sha, _) in enumerate(chunk) if j not in bad]
            if not done:
                continue
            feats = ext(x)
            store.put(done, feats)
            found.update(zip(done, feats, strict=True))
    return found, failed


def extract(ws: Workspace, rows: Sequence[R], extractor: str | Extractor) -> np.ndarray:
    """Features of `rows` in order: float32 (N, D). Computed once per (extractor, image bytes), then cached
    in `<workspace>/cache/features/`; pixels come from the decoded-image cache at the extractor's size.

    Raises ImageDecodeError naming the file when an image without cached features is missing or does not
    decode; `extract_available` skips those instead."""
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor, ws)
    found, failed = _features(ws, rows, ext)
    if failed:
        row = next(r for r in rows if r.sha256 in failed)
        raise ImageDecodeError(f"{row.path}: {failed[row.sha256]}")
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[r.sha256] for r in rows]).astype(np.float32, copy=False)


def extract_available(
    ws: Workspace, rows: Sequence[R], extractor: str | Extractor
) -> tuple[list[R], np.ndarray, list[SkippedImage]]:
    """Like `extract`, but images whose file is missing on disk or no longer decodes are set aside:
    -> (rows that have features, float32 (N, D) in their order, the rows set aside and why)."""
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor, ws)
    present, skipped = split_present(rows)
    found, failed = _features(ws, present, ext)
    kept = [r for r in present if r.sha256 in found]
    skipped += [SkippedImage(r.id, r.path, UNDECODABLE, failed[r.sha256]) for r in present if r.sha256 in failed]
    if not kept:
        return kept, np.zeros((0, 0), dtype=np.float32), skipped
    return kept, np.stack([found[r.sha256] for r in kept]).astype(np.float32, copy=False), skipped


def extract_arrays(x: np.ndarray, extractor: str | Extractor, *, workspace: Workspace | None = None) -> np.ndarray:
    """In-memory images: uint8 (N, S, S, 3) -> float32 (N, D); no cache. `workspace` resolves run:RUN ids."""
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor, workspace)
    return ext(x)
