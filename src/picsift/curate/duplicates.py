"""Exact and near-duplicate groups, with cross-split leakage and conflicting labels flagged separately.

Near duplicates (re-encoded, resized, slightly cropped, brightness-shifted copies) are found in two steps:

1. candidates: k nearest neighbours in a faiss index over coarse 8x8 normalised grayscale thumbnails
   (plus neighbours in an embedding space when one is given, and pairs within a few bits of perceptual
   hash), so the work grows as N*k, not N^2;
2. verification: the correlation of 16x16 normalised thumbnails, maximised over small crops (5-10%, nine
   offsets) of either image, confirmed on the thumbnails' fine detail and on the mean colour. A crop shifts and rescales content, which breaks plain hashes and plain
   thumbnails; searching over the crop explicitly is what lifts recall on cropped copies without
   lowering the threshold (and with it precision).

Normalising each thumbnail to zero mean and unit norm makes the score blind to brightness and contrast
shifts; 16x16 resolution is coarse enough to ignore JPEG artefacts and resampling blur.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from picsift.curate.findings import Finding
from picsift.store import ImageRow

SPLIT_KEEP_RANK = {"test": 0, "val": 1, "train": 2}


@dataclass(frozen=True)
class DuplicateParams:
    """Thresholds of near-duplicate detection: correlations in -1..1, colour distance, crop fractions, thumbnail px."""

    threshold: float = 0.955  # aligned thumbnail correlation for a near duplicate
    neighbours: int = 20  # candidates per image from the coarse index
    phash_max_bits: int = 4  # pairs this close in 64-bit pHash are candidates and need only threshold - 0.05
    detail_threshold: float = 0.85  # the same correlation on the thumbnails' fine detail (low-pass removed)
    max_colour_distance: float = 0.08  # L1 distance between mean normalised (r, g, b) of the two images
    crops: tuple[float, ...] = (0.05, 0.075, 0.10)
    thumb: int = 16


class UnionFind:
    """Disjoint sets over the integers 0..n-1 (path halving; a set's root is its smallest member)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        """The root of the set holding `i`."""
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        """Join the sets holding `a` and `b`."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        """The sets of more than one member, each in ascending order."""
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            out[self.find(i)].append(i)
        return [g for g in out.values() if len(g) > 1]


def _gray(x: np.ndarray) -> np.ndarray:
    xf = x.astype(np.float32)
    return xf[..., 0] * 0.299 + xf[..., 1] * 0.587 + xf[..., 2] * 0.114


def _normalise(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(axis=-1, keepdims=True)
    return (v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)).astype(np.float32)


def thumbnails(x: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, size*size) zero-mean unit-norm grayscale thumbnails."""
    return thumbnail_variants(x, size, crops=())[:, 0]


def thumbnail_variants(
    x: np.ndarray, size: int = 16, crops: Sequence[float] = (0.05, 0.075, 0.10), detail: bool = False
) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, V, size*size): the whole image first, then each crop fraction at nine
    offsets (corners, edges, centre), each resized to size x size and normalised. With `detail`, each
    thumbnail's low-pass (4x coarser) is subtracted first, so two smooth skies with different planes in
    them no longer correlate through their shared gradient."""
    import torch
    import torch.nn.functional as F

    if len(x) == 0:
        return np.zeros((0, 1 + 9 * len(crops), size * size), np.float32)
    g = torch.from_numpy(_gray(x))[:, None]
    s = g.shape[-1]
    boxes = [(0, 0, s)]
    for f in crops:
        c = max(2, round(s * (1 - f)))
        offs = sorted({0, (s - c) // 2, s - c})
        boxes += [(oy, ox, c) for oy in offs for ox in offs]
    outs = []
    for oy, ox, c in boxes:
        crop = g[:, :, oy : oy + c, ox : ox + c]
        t = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if detail:
            low = F.avg_pool2d(t, 4)
            t = t - F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        outs.append(t)
    v = torch.stack(outs, 1).reshape(len(x), len(boxes), size * size).numpy()
    return _normalise(v)


def knn_pairs(vectors: np.ndarray, k: int) -> set[tuple[int, int]]:
    """Pairs (i < j) where j is among i's k nearest neighbours by inner product (faiss)."""
    import faiss

    n = len(vectors)
    if n < 2:
        return set()
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    # Past ~200k vectors an exact index gets slow; HNSW keeps the search sub-linear.
    index: Any = (
        faiss.IndexHNSWFlat(v.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        if n > 200_000
        else faiss.IndexFlatIP(v.shape[1])
    )
    index.add(v)
    _, nn = index.search(v, min(k + 1, n))
    pairs: set[tuple[int, int]] = set()
    for i in range(n):
        for j in nn[i]:
            j = int(j)
            if j >= 0 and j != i:
                pairs.add((i, j) if i < j else (j, i))
    return pairs


def phash_bits(x: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, 8) uint8 packed 64-bit perceptual hashes (imagehash.phash)."""
    import imagehash
    from PIL import Image

    out = np.zeros((len(x), 8), np.uint8)
    for i in range(len(x)):
        h = imagehash.phash(Image.fromarray(x[i]))
        out[i] = np.packbits(h.hash.flatten())
    return out


def phash_pairs(bits: np.ndarray, max_bits: int) -> dict[tuple[int, int], int]:
    """Pairs within `max_bits` Hamming distance, via a faiss binary index: {(i, j): distance}."""
    import faiss

    if len(bits) < 2:
        return {}
    index = faiss.IndexBinaryFlat(64)
    index.add(np.ascontiguousarray(bits))
    lims, dist, labels = index.range_search(np.ascontiguousarray(bits), max_bits + 1)
    out: dict[tuple[int, int], int] = {}
    for i in range(len(bits)):
        for d, j in zip(dist[lims[i] : lims[i + 1]], labels[lims[i] : lims[i + 1]], strict=True):
            j = int(j)
            if j != i:
                out[(i, j) if i < j else (j, i)] = int(d)
    return out


def _best_grouped(v: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """max over variants of v[a, k] . v[b, 0] and v[b, k] . v[a, 0] for each pair (a, b), as one small
    matrix product per image rather than gathering a (pairs, variants, dims) array (memory-bound)."""
    out = np.full(len(pairs), -1.0, np.float32)
    for side in (0, 1):
        a, b = pairs[:, side], pairs[:, 1 - side]
        order = np.argsort(a, kind="stable")
        starts = np.flatnonzero(np.r_[True, a[order][1:] != a[order][:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            idx = order[s:e]
            scores = (v[a[idx[0]]] @ v[b[idx], 0].T).max(axis=0)
            out[idx] = np.maximum(out[idx], scores)
    return out


def aligned_similarity(
    x: np.ndarray,
    pairs: np.ndarray,
    size: int = 16,
    crops: Sequence[float] = (0.05, 0.075, 0.10),
    chunk: int = 4096,
    memory_bytes: int = 512 * 2**20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pair (i, j): the max correlation of one image's thumbnail with any crop of the other's, the
    same for the thumbnails' fine detail, and the L1 distance of their mean normalised colours."""
    sim = np.zeros(len(pairs), np.float32)
    det = np.zeros(len(pairs), np.float32)
    mean = x.reshape(len(x), -1, 3).mean(axis=1)
    chroma = mean / (mean.sum(axis=1, keepdims=True) + 1e-6)
    col = np.abs(chroma[pairs[:, 0]] - chroma[pairs[:, 1]]).sum(axis=1) if len(pairs) else np.zeros(0)

    def best(v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s1 = np.einsum("pvd,pd->pv", v[a], v[b, 0]).max(1)
        s2 = np.einsum("pvd,pd->pv", v[b], v[a, 0]).max(1)
        return np.maximum(s1, s2)

    n_variants = 1 + 9 * len(crops)
    involved = np.unique(pairs.reshape(-1)) if len(pairs) else np.zeros(0, np.int64)
    if len(involved) * n_variants * size * size * 4 * 2 <= memory_bytes:
        # Small enough: every image's variants once, instead of once per chunk it appears in.
        pos = np.full(len(x), -1, np.int64)
        pos[involved] = np.arange(len(involved))
        v_all = thumbnail_variants(x[involved], size, crops)
        d_all = thumbnail_variants(x[involved], size, crops, detail=True)
        p = pos[pairs]
        sim[:] = _best_grouped(v_all, p)
        det[:] = _best_grouped(d_all, p)
        return sim, det, col.astype(np.float32)
    for start in range(0, len(pairs), chunk):
        p = pairs[start : start + chunk]
        uniq, inv = np.unique(p.reshape(-1), return_inverse=True)
        inv = inv.reshape(-1, 2)
        a, b = inv[:, 0], inv[:, 1]
        sim[start : start + len(p)] = best(thumbnail_variants(x[uniq], size, crops), a, b)
        det[start : start + len(p)] = best(thumbnail_variants(x[uniq], size, crops, detail=True), a, b)
    return sim, det, col.astype(np.float32)


def near_duplicate_pairs(
    x: np.ndarray, params: DuplicateParams | None = None, embeddings: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """Near-duplicate pairs (i, j, similarity) among (N, S, S, 3) uint8 images (indices into x)."""
    p = params or DuplicateParams()
    n = len(x)
    if n < 2:
        return []
    cand = knn_pairs(thumbnails(x, 8), p.neighbours)
    if embeddings is not None and len(embeddings) == n:
        e = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
        cand |= knn_pairs(e, max(5, p.neighbours // 2))
    close_hash = phash_pairs(phash_bits(x), p.phash_max_bits) if p.phash_max_bits > 0 else {}
    cand |= set(close_hash)
    if not cand:
        return []
    arr = np.array(sorted(cand), dtype=np.int64)
    sim, det, col = aligned_similarity(x, arr, p.thumb, p.crops)
    out = []
    for (i, j), s, d, c in zip(arr.tolist(), sim.tolist(), det.tolist(), col.tolist(), strict=True):
        need = p.threshold - (0.05 if (i, j) in close_hash else 0.0)
        if s >= need and d >= p.detail_threshold and c <= p.max_colour_distance:
            out.append((int(i), int(j), float(s)))
    return out


def keep_order(rows: Sequence[ImageRow], quality: dict[int, float] | None = None) -> list[ImageRow]:
    """The group's images, best copy first: readable, then the most pixels, then the highest `quality` (image id
    -> `quality.copy_quality`: sharp, contrasty, not clipped), then the held-out split (test, val: so that of two
    equal copies evaluation keeps its own), then the biggest file, then the oldest id."""
    q = quality or {}
    return sorted(
        rows,
        key=lambda r: (
            not r.readable,
            -((r.width or 0) * (r.height or 0)),
            -round(q.get(r.id, 0.0), 6),
            SPLIT_KEEP_RANK.get(r.split or "", 3),
            -r.byte_size,
            r.id,
        ),
    )


def duplicate_findings(
    rows: Sequence[ImageRow],
    near_pairs: Sequence[tuple[int, int, float]] = (),
    quality: dict[int, float] | None = None,
) -> list[Finding]:
    """Groups from identical bytes (sha256) plus near pairs (indices into rows) -> findings.

    Each group yields one `exact_duplicate` or `near_duplicate` finding (image_ids best-first), plus
    `split_leakage` when it spans splits and `conflicting_labels` when its labels disagree.
    """
    uf = UnionFind(len(rows))
    by_sha: dict[str, int] = {}
    for i, r in enumerate(rows):
        if r.sha256 in by_sha:
            uf.union(by_sha[r.sha256], i)
        else:
            by_sha[r.sha256] = i
    best: dict[tuple[int, int], float] = {}
    for i, j, s in near_pairs:
        uf.union(i, j)
        best[(min(i, j), max(i, j))] = s
    findings: list[Finding] = []
    for group in sorted(uf.groups(), key=min):
        members = [rows[i] for i in group]
        ordered = keep_order(members, quality)
        ids = tuple(r.id for r in ordered)
        exact = len({r.sha256 for r in members}) == 1
        sims = [s for (i, j), s in best.items() if i in group and j in group]
        score = 1.0 if exact else float(max(sims) if sims else 1.0)
        names = ", ".join(r.path.rsplit("/", 1)[-1] for r in ordered[:3]) + (" ..." if len(ordered) > 3 else "")
        details = {
            "keep": ids[0],
            "paths": [r.path for r in ordered],
            "splits": [r.split for r in ordered],
            "labels": [r.label for r in ordered],
        }
        if exact:
            findings.append(
                Finding("exact_duplicate", ids, score, f"{len(ids)} files with identical bytes: {names}", details)
            )
        else:
            findings.append(
                Finding(
                    "near_duplicate",
                    ids,
                    score,
                    f"{len(ids)} near-identical images (similarity {score:.3f}): {names}",
                    {**details, "min_pair_similarity": round(float(min(sims)), 4) if sims else 1.0},
                )
            )
        splits = sorted({r.split for r in members if r.split})
        if len(splits) > 1:
            findings.append(
                Finding(
                    "split_leakage",
                    ids,
                    score,
                    f"the same picture is in {' and '.join(splits)}: evaluation would score a memorised image",
                    details,
                )
            )
        labels = sorted({r.label for r in members if r.label is not None})
        if len(labels) > 1:
            findings.append(
                Finding(
                    "conflicting_labels",
                    ids,
                    score,
                    f"copies of the same picture are labelled {' vs '.join(repr(x) for x in labels)}",
                    details,
                )
            )
    return findings
