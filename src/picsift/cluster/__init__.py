"""Unsupervised groups of images: cluster feature vectors, map them in 2-D, score against known labels.

from picsift.cluster import cluster_features, run
result = cluster_features(X, k=None)          # plain arrays: automatic k by silhouette
report = run(ws, features="hog", k=None)      # workspace -> clusters.json + clusters.html
"""

from __future__ import annotations

from picsift.cluster.algorithms import Clustering, agreement, cluster_features, embed_2d
from picsift.cluster.pipeline import ClusterResult, run

__all__ = ["ClusterResult", "Clustering", "agreement", "cluster_features", "embed_2d", "run"]
