"""Clustering: separable toy data, automatic k, label agreement, the workspace run and its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from picsift.cluster import agreement, cluster_features, embed_2d, run
from picsift.errors import ConfigError
from support.features import make_workspace


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """OpenMP spin-waiting (k-means, t-SNE) crawls on a busy 2-core machine; one thread is steady."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def blobs(k: int = 4, per: int = 25, dim: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (k, dim))
    y = np.repeat(np.arange(k), per)
    return (centres[y] + rng.normal(0, 1, (len(y), dim))).astype(np.float32), y


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_automatic_k_finds_separable_groups(method: str) -> None:
    x, y = blobs()
    result = cluster_features(x, method=method, max_k=8)
    assert result.k == 4 and set(result.k_scores) == set(range(2, 9))
    assert max(result.k_scores, key=result.k_scores.__getitem__) == 4
    scores = agreement(list(y), result.labels)
    assert scores["purity"] == 1.0 and scores["ari"] == pytest.approx(1.0) and scores["nmi"] == pytest.approx(1.0)


def test_hdbscan_and_fixed_k() -> None:
    x, y = blobs(k=3, per=30)
    found = cluster_features(x, method="hdbscan")
    assert found.k == 3 and agreement(list(y), found.labels)["ari"] > 0.9
    fixed = cluster_features(x, k=5)
    assert fixed.k == 5 and len(set(fixed.labels.tolist())) == 5


def test_agreement_penalises_a_bad_clustering() -> None:
    y = np.repeat([0, 1], 10)
    mixed = np.tile([0, 1], 10)
    scores = agreement(list(y), mixed)
    assert scores["purity"] == 0.5 and scores["ari"] <= 0.0


def test_errors() -> None:
    x, _ = blobs(k=2, per=3)
    with pytest.raises(ConfigError, match="larger than the number of images"):
        cluster_features(x, k=50)
    with pytest.raises(ConfigError, match="did you mean kmeans"):
        cluster_features(x, method="kmean")
    with pytest.raises(ConfigError, match="drop --k"):
        cluster_features(x, k=2, method="hdbscan")


def test_embed_2d_shapes() -> None:
    x, _ = blobs(k=2, per=10)
    xy, used = embed_2d(x)
    assert xy.shape == (20, 2) and used in ("tsne", "umap")
    xy, used = embed_2d(x[:4])
    assert xy.shape == (4, 2) and used == "pca"


def test_workspace_run_writes_groups_for_labelling(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=12, classes=3)
    result = run(ws, features="hog", k=3)
    summary = json.loads(result.json_path.read_text())
    ids = sorted(i for c in summary["clusters"] for i in c["image_ids"])
    assert ids == sorted(r.id for r in ws.catalog.images())  # every image in exactly one group
    assert summary["k"] == 3 and summary["k_chosen_by"] == "user" and summary["metrics"]["nmi"] > 0.7
    page = result.html_path.read_text()
    assert page.count('class="pt ') == 36 and "data:image/jpeg;base64," in page
    auto = run(ws, features="hog", max_k=5).summary
    assert auto["k_chosen_by"] == "silhouette" and 2 <= auto["k"] <= 5 and len(auto["k_scores"]) == 4
    with pytest.raises(ConfigError, match="larger than the number of images"):
        run(ws, k=37)
