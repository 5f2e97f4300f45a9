"""Active learning: which unlabelled images to label next.

Uncertainty alone picks near-duplicates (the model is unsure about a whole cluster at once), and
diversity alone ignores what the model already knows. The queue combines both as in "diverse
mini-batch active learning" (Zhdanov 2019): keep the `prefilter * n` most uncertain images, cluster
them into `n` groups with k-means weighted by uncertainty, and take the image nearest each centre.

`select_batch` works on plain arrays (probabilities and embeddings), so the benchmark and the web app
run the same code; `next_batch` feeds it from a workspace and its latest run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from picsift.errors import ConfigError
from picsift.numerics import entropy
from picsift.store import Workspace

UNCERTAINTY_METHODS = ("margin", "entropy", "least-confident")


def uncertainty(probs: np.ndarray, method: str = "margin") -> np.ndarray:
    """(N, K) probabilities -> (N,) uncertainty in [0, 1]; higher means the model is less sure."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ConfigError(f"probabilities must be shaped (N, K), got {p.shape}")
    if method == "margin":
        if p.shape[1] == 1:
            return np.zeros(len(p))
        top2 = -np.partition(-p, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    if method == "entropy":
        return entropy(p, normalised=True)
    if method == "least-confident":
        return 1.0 - p.max(axis=1)
    raise ConfigError(f"unknown uncertainty {method!r}; choose one of {', '.join(UNCERTAINTY_METHODS)}")


def select_batch(
    scores: np.ndarray,
    embeddings: np.ndarray | None,
    n: int,
    *,
    prefilter: int = 3,
    dims: int | None = 32,
    seed: int = 0,
    uncertainty_share: float = 1.0,
) -> np.ndarray:
    """Indices of `n` items: uncertain (high `scores`) and diverse (spread over `embeddings`).

    scores: (N,) uncertainty; embeddings: (N, D) or None for uncertainty only; `dims`: PCA size the
    embeddings are reduced to first (None keeps them). `uncertainty_share` in [0, 1]: the fraction of
    the batch chosen by uncertainty among the most uncertain; the rest cover the whole pool (k-means
    over all of it, the most uncertain image of each cluster), which is what a weak early model needs
    (see `uncertainty_share`).
    The result is ordered by score.
    """
    scores = np.asarray(scores, dtype=np.float64)
    total = len(scores)
    n = min(n, total)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    if embeddings is None or n == total:
        return order[:n]
    if not 0.0 <= uncertainty_share <= 1.0:
        raise ConfigError(f"uncertainty_share must be in [0, 1], got {uncertainty_share}")
    x = np.asarray(embeddings, dtype=np.float64)
    if dims and x.shape[1] > dims and total > dims:
        # Distances in hundreds of raw dimensions are dominated by noise and turn outliers into
        # singleton clusters (whose "nearest to the centre" is the outlier itself); the leading
        # principal components of the whole pool keep the structure that matters.
        from sklearn.decomposition import PCA

        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    n_unc = int(round(n * uncertainty_share))
    chosen: list[int] = []
    if n - n_unc > 0:
        # Cover the whole pool before trusting the model's ranking: one image per region of the data,
        # the one the model is least sure about there.
        chosen = _most_uncertain_per_cluster(x, scores, n - n_unc, seed)
    n_unc = n - len(chosen)  # k-means may leave a cluster empty: uncertainty fills the batch
    if n_unc > 0:
        taken = set(chosen)
        rest = np.array([i for i in order if int(i) not in taken], dtype=np.int64)
        pool = rest[: min(len(rest), max(n_unc, prefilter * n_unc))]
        weights = scores[pool] - scores[pool].min() + 1e-3
        chosen += _nearest_to_centres(x, pool, weights, n_unc, taken, seed)
    picked = np.array(chosen, dtype=np.int64)
    return picked[np.argsort(-scores[picked], kind="stable")]


def _most_uncertain_per_cluster(x: np.ndarray, scores: np.ndarray, k: int, seed: int) -> list[int]:
    """k-means on all of x with k centres; the highest-scoring item of each cluster."""
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=min(k, len(x)), n_init=1, random_state=seed).fit_predict(x)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(int(members[np.argmax(scores[members])]))
    return chosen


def _nearest_to_centres(
    x: np.ndarray, pool: np.ndarray, weights: np.ndarray, k: int, taken: set[int], seed: int
) -> list[int]:
    """Weighted k-means on x[pool] with k centres; the untaken pool item nearest each centre."""
    from sklearn.cluster import KMeans

    xp = x[pool]
    k = min(k, len(pool))
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(xp, sample_weight=weights)
    centres = km.cluster_centers_
    dist = (xp**2).sum(1)[:, None] - 2.0 * xp @ centres.T + (centres**2).sum(1)[None, :]  # (pool, k)
    chosen: list[int] = []
    taken = set(taken)
    for c in range(k):
        for j in np.argsort(dist[:, c]):
            if int(pool[j]) not in taken:
                taken.add(int(pool[j]))
                chosen.append(int(pool[j]))
                break
    return chosen


def uncertainty_share(n_labelled: int, n_classes: int, *, start: float = 20.0, full: float = 100.0) -> float:
    """Fraction of a batch to choose by uncertainty, growing with labels per class.

    With few labels per class the model's uncertainty is mostly noise, and uncertainty sampling loses
    to random ("cold start", Hacohen et al. 2022); representatives of the pool do better there. The
    share rises linearly from 0 at `start` labels per class to 1 at `full`.
    """
    per_class = n_labelled / max(n_classes, 1)
    return float(np.clip((per_class - start) / max(full - start, 1e-9), 0.0, 1.0))


@dataclass
class QueueItem:
    """One image proposed for labelling, with its uncertainty and the model's guess (None without a model)."""

    image_id: int
    score: float  # uncertainty (1.0 when no model exists yet)
    predicted: str | None
    confidence: float | None

    def to_dict(self) -> dict[str, object]:
        """The item as JSON-ready data."""
        return {
            "image_id": self.image_id,
            "score": self.score,
            "predicted": self.predicted,
            "confidence": self.confidence,
        }


@dataclass
class Batch:
    """The next images to label, with how they were chosen: the run, the method and the embedding."""

    items: list[QueueItem]
    run: str | None  # the run whose uncertainty ranked the batch; None: diversity only
    method: str
    embeddings: str  # the extractor behind the diversity term (a pretrained backbone when installed)
    uncertainty_share: float = 1.0  # fraction chosen among the most uncertain; the rest cover the pool
    embedding_text: str = ""  # that choice and why, e.g. "hand features: no pretrained weights installed ..."


def next_batch(
    ws: Workspace,
    n: int = 24,
    *,
    run: str | Path | None = None,
    method: str = "margin",
    extractor: str | None = None,
    max_pool: int = 20000,
    seed: int = 0,
) -> Batch:
    """The next `n` unlabelled images to label, most informative first.

    With a trained run, uncertainty comes from its predictions, and the share of the batch chosen
    among the most uncertain grows with the labels per class (`uncertainty_share`); before the first
    run every image is equally uncertain and the batch is chosen for diversity alone. Diversity is measured
    on `extractor`, by default a pretrained embedding when installed (see `scoring.embed_rows`).
    """
    from picsift.label.scoring import embed_rows, latest_run, predict_rows

    if n < 1:
        raise ConfigError(f"batch size must be at least 1, got {n}")
    run_dir = latest_run(ws, run)  # looked up first: an empty batch still names the run that exists
    run_name = run_dir.name if run_dir is not None else None
    rows = ws.catalog.images(labeled=False)
    if not rows:
        return Batch([], run_name, method, "none")
    rng = np.random.default_rng(seed)
    if len(rows) > max_pool:  # bound the work on huge catalogs: a random pool stands in for all
        keep = np.sort(rng.choice(len(rows), size=max_pool, replace=False))
        rows = [rows[i] for i in keep]
    share = 1.0
    if run_dir is not None:  # images whose file is gone or no longer decodes are left out of the batch
        rows, probs, classes, _ = predict_rows(ws, rows, run_dir)
        scores = uncertainty(probs, method)
        top = probs.argmax(axis=1)
        share = uncertainty_share(len(ws.catalog.images(labeled=True)), len(classes))
    else:
        probs, classes, top = None, [], None
        scores = np.ones(len(rows)) + rng.random(len(rows)) * 1e-6
    embedded = embed_rows(ws, rows, extractor)
    if len(embedded.rows) < len(rows):
        readable = np.isin([r.id for r in rows], [r.id for r in embedded.rows])
        rows, scores = embedded.rows, scores[readable]
        if probs is not None and top is not None:
            probs, top = probs[readable], top[readable]
    run_name = run_dir.name if run_dir is not None else None
    if not rows:
        return Batch([], run_name, method, embedded.name, embedding_text=embedded.text)
    picked = select_batch(scores, embedded.vectors, n, seed=seed, uncertainty_share=share)
    items = [
        QueueItem(
            image_id=rows[i].id,
            score=float(scores[i]) if run_dir is not None else 1.0,
            predicted=classes[int(top[i])] if top is not None else None,
            confidence=float(probs[i].max()) if probs is not None else None,
        )
        for i in picked
    ]
    return Batch(items, run_name, method, embedded.name, share, embedded.text)
