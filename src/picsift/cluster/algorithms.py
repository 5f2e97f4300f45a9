"""Clustering feature vectors: k-means, agglomerative (Ward) and HDBSCAN, with k chosen by silhouette.

Plain arrays in, plain arrays out: no catalog, no files, so the labelling stage and tests can call it
directly. Features are standardised and reduced to at most 50 PCA components first: distances in a
few dozen informative directions cluster better and much faster than in 1,764 raw HOG dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from picsift.errors import ConfigError
from picsift.suggest import did_you_mean

METHODS = ("kmeans", "agglomerative", "hdbscan")
PCA_DIMS = 50
# Silhouette costs O(n^2); above this many points it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 3000


@dataclass
class Clustering:
    """A clustering of N points: the cluster of each, the number of clusters, the method and its silhouette."""

    labels: np.ndarray  # (N,) cluster index per point; -1 = noise (HDBSCAN only)
    k: int  # number of clusters (noise excluded)
    method: str
    silhouette: float | None  # of the chosen clustering (None when undefined)
    k_scores: dict[int, float] = field(default_factory=dict)  # silhouette per k tried (automatic k)


def prepare(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Standardise, then PCA to at most 50 dimensions: float32 (N, d)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
    dims = min(PCA_DIMS, z.shape[0] - 1, z.shape[1])
    if dims >= 2 and z.shape[1] > dims:
        z = PCA(n_components=dims, random_state=seed).fit_transform(z)
    return z.astype(np.float32)


def _silhouette(z: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    from sklearn.metrics import silhouette_score

    keep = labels >= 0
    n_clusters = len(set(labels[keep].tolist()))
    if n_clusters < 2 or n_clusters >= keep.sum():
        return None
    sample = SILHOUETTE_SAMPLE if keep.sum() > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(z[keep], labels[keep], sample_size=sample, random_state=seed))


def _fit(z: np.ndarray, k: int, method: str, seed: int) -> np.ndarray:
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return np.asarray(KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(z))
    from sklearn.cluster import AgglomerativeClustering

    return np.asarray(AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(z))


def cluster_features(
    x: np.ndarray,
    *,
    k: int | None = None,
    method: str = "kmeans",
    max_k: int = 12,
    min_cluster_size: int | None = None,
    seed: int = 0,
) -> Clustering:
    """Cluster (N, D) features. k=None chooses k in [2, max_k] by the best silhouette (k-means and
    agglomerative); HDBSCAN finds the number of clusters itself and marks outliers -1."""
    n = len(x)
    if method not in METHODS:
        did = did_you_mean(method, METHODS, n=1)
        raise ConfigError(f"unknown clustering method {method!r}{did} (known: {', '.join(METHODS)})")
    if n < 3:
        raise ConfigError(f"clustering needs at least 3 images, got {n}")
    z = prepare(x, seed)
    if method == "hdbscan":
        return _hdbscan(z, k, min_cluster_size, seed)
    if k is not None:
        if k < 2:
            raise ConfigError(f"--k must be at least 2, got {k}")
        if k > n:
            raise ConfigError(f"--k {k} is larger than the number of images ({n}); pick k <= {n} or use --auto")
        labels = _fit(z, k, method, seed)
        return Clustering(labels, k, method, _silhouette(z, labels, seed))
    return _best_k(z, min(max_k, n - 1), method, seed)


def _hdbscan(z: np.ndarray, k: int | None, min_cluster_size: int | None, seed: int) -> Clustering:
    """HDBSCAN (Campello et al. 2013): clusters of at least `min_cluster_size` (default 2% of the images, >= 5),
    the rest marked -1."""
    if k is not None:
        raise ConfigError("hdbscan chooses the number of clusters itself: drop --k (or use --auto)")
    from sklearn.cluster import HDBSCAN

    n = len(z)
    size = min_cluster_size or max(5, n // 50)
    labels = np.asarray(HDBSCAN(min_cluster_size=min(size, n), copy=True).fit_predict(z))
    found = int(labels.max()) + 1 if (labels >= 0).any() else 0
    return Clustering(labels, found, "hdbscan", _silhouette(z, labels, seed))


def _best_k(z: np.ndarray, top: int, method: str, seed: int) -> Clustering:
    """The k in [2, top] with the best silhouette."""
    if top < 2:
        raise ConfigError(f"automatic k needs at least 3 images, got {len(z)}")
    scores: dict[int, float] = {}
    best: tuple[float, int, np.ndarray] | None = None
    for kk in range(2, top + 1):
        labels = _fit(z, kk, method, seed)
        s = _silhouette(z, labels, seed)
        if s is None:
            continue
        scores[kk] = s
        if best is None or s > best[0]:
            best = (s, kk, labels)
    if best is None:
        raise ConfigError("no k in the tried range gave a valid clustering (are all images identical?)")
    return Clustering(best[2], best[1], method, best[0], scores)


def agreement(true_labels: list[Any], clusters: np.ndarray) -> dict[str, float]:
    """How well clusters match known labels: purity, normalised mutual information, adjusted Rand index.

    Purity: the share of images whose cluster's majority label is their own (1.0 = every cluster is one
    class; it rewards many small clusters, hence NMI and ARI beside it, which correct for that).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y = np.asarray([str(v) for v in true_labels])
    c = np.asarray(clusters)
    if len(y) == 0:
        return {}
    majority = 0
    for cl in np.unique(c):
        _, counts = np.unique(y[c == cl], return_counts=True)
        majority += int(counts.max())
    return {
        "purity": majority / len(y),
        "nmi": float(normalized_mutual_info_score(y, c)),
        "ari": float(adjusted_rand_score(y, c)),
        "n_labeled": len(y),
    }


def embed_2d(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """A 2-D map of (N, D) features for display: UMAP if installed, else t-SNE, else PCA (tiny sets)."""
    z = prepare(x, seed)
    n = len(z)
    if method in ("auto", "umap"):
        try:
            import umap

            return np.asarray(umap.UMAP(random_state=seed).fit_transform(z), dtype=np.float32), "umap"
        except ImportError:
            if method == "umap":
                raise ConfigError("--map umap needs the umap-learn package (pip install umap-learn)") from None
    if method in ("auto", "tsne") and n >= 8:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (n - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
        return np.asarray(xy, dtype=np.float32), "tsne"
    from sklearn.decomposition import PCA

    if z.shape[1] < 2:
        return np.column_stack([z[:, 0], np.zeros(n)]).astype(np.float32), "pca"
    return np.asarray(PCA(n_components=2, random_state=seed).fit_transform(z), dtype=np.float32), "pca"
