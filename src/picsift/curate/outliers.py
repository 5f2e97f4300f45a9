"""Outliers: images far from everything else in embedding space (mean cosine distance to the k nearest
neighbours), over the whole dataset and within each image's class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from picsift.curate.findings import Finding
from picsift.curate.quality import robust_z


def knn_distance(embeddings: np.ndarray, k: int = 10) -> np.ndarray:
    """(N, D) -> (N,) mean cosine distance to the k nearest other points (faiss, exact)."""
    import faiss

    n = len(embeddings)
    if n < 2:
        return np.zeros(n, np.float32)
    e = np.ascontiguousarray(embeddings, dtype=np.float32)
    e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
    index = faiss.IndexFlatIP(e.shape[1])
    index.add(e)
    kk = min(k + 1, n)
    sim, nn = index.search(e, kk)
    # Drop each point's own entry (usually the first; exact duplicates may swap order).
    own = nn == np.arange(n)[:, None]
    sim = np.where(own, np.nan, sim)
    d = 1.0 - np.nanmean(sim[:, :kk], axis=1) if kk > 1 else np.zeros(n)
    return np.nan_to_num(d).astype(np.float32)


def find_outliers(
    ids: Sequence[int],
    embeddings: np.ndarray,
    labels: Sequence[str | None] | None = None,
    *,
    k: int = 10,
    z: float = 4.0,
) -> list[Finding]:
    """`outlier` findings (far from all images) and `class_outlier` findings (far from its own class).

    Score: robust z-score of the log kNN distance (how many robust SDs beyond the typical image).
    """
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} ids but {len(embeddings)} embeddings")
    findings: list[Finding] = []
    if len(ids) < k + 2:
        return findings
    d = knn_distance(embeddings, k)
    zs = robust_z(np.log(d + 1e-6))  # log: kNN distances have a long right tail even without outliers
    for i in (int(v) for v in np.flatnonzero(zs > z)):
        findings.append(
            Finding(
                "outlier",
                (int(ids[i]),),
                float(zs[i]),
                f"unlike the rest of the dataset: nearest neighbours {zs[i]:.1f} robust SDs farther than usual",
                {"knn_distance": round(float(d[i]), 4), "z": round(float(zs[i]), 2)},
            )
        )
    if labels is not None:
        lab = np.array([str(x) if x is not None else "" for x in labels])
        for cls in sorted(str(c) for c in set(lab) - {""}):
            members = np.flatnonzero(lab == cls)
            if len(members) < k + 2:
                continue
            dc = knn_distance(embeddings[members], k)
            zc = robust_z(np.log(dc + 1e-6))
            for j in (int(v) for v in np.flatnonzero(zc > z)):
                m = int(members[j])
                findings.append(
                    Finding(
                        "class_outlier",
                        (int(ids[m]),),
                        float(zc[j]),
                        f"unlike the other {cls!r} images: {zc[j]:.1f} robust SDs farther than usual",
                        {"class": cls, "knn_distance": round(float(dc[j]), 4), "z": round(float(zc[j]), 2)},
                    )
                )
    return findings
