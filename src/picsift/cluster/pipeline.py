"""`picsift.cluster.run`: the workspace's images -> features -> clusters -> clusters.json + clusters.html.

clusters.json lists the image ids of every cluster, so the labelling stage can offer each cluster as a
group to name at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsift.cluster.algorithms import agreement, cluster_features, embed_2d
from picsift.errors import ConfigError, WorkspaceError
from picsift.jsonio import write_json
from picsift.label.links import app_url
from picsift.store import Workspace

log = logging.getLogger("picsift.cluster")

CLUSTERS_DIR = "clusters"
MAP_POINTS = 1500  # thumbnails on the map; more make the page heavy without showing more


@dataclass
class ClusterResult:
    """What clustering wrote: the summary (clusters.json's content) and the JSON and HTML files."""

    summary: dict[str, Any]  # what clusters.json holds
    json_path: Path
    html_path: Path


def run(
    workspace: Workspace | str | Path | None = None,
    *,
    features: str = "auto",
    k: int | None = None,
    method: str = "kmeans",
    max_k: int = 12,
    map_method: str = "auto",
    labeled_only: bool = False,
    seed: int = 0,
    out_dir: Path | None = None,
    label_url: str | None = None,
) -> ClusterResult:
    """Cluster the workspace's usable images (readable, not excluded, first copy of their bytes).

    features: an extractor name, or "auto": a pretrained embedding when its weights are installed, else HOG
    (the choice and its reason are in the summary's "embedding"). label_url: the labelling app the map's images
    link to (None: its default address; ConfigError for one that is not an http(s) URL)."""
    from picsift.data.available import skipped_dicts
    from picsift.data.cache import DecodedCache
    from picsift.features import extract_available, get_extractor, resolve_embedding

    app = app_url(label_url)  # a malformed --label-url fails before any work
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    choice = resolve_embedding(features, fallback="hog")
    ext = get_extractor(choice.extractor, ws)  # fail on a typo before any work
    rows = ws.catalog.images(include_duplicates=False, labeled=True if labeled_only else None)
    if not rows:
        raise WorkspaceError(f"no usable images to cluster in {ws.root}: import a folder first")
    if k is not None and k > len(rows):
        raise ConfigError(f"--k {k} is larger than the number of images ({len(rows)}); pick k <= {len(rows)}")
    t0 = time.perf_counter()
    rows, x, skipped = extract_available(ws, rows, ext)  # images missing on disk or no longer decoding: skipped
    if len(rows) < 2:
        raise WorkspaceError(f"fewer than 2 images can be read to cluster in {ws.root} ({len(skipped)} skipped)")
    t_features = time.perf_counter() - t0
    result = cluster_features(x, k=k, method=method, max_k=max_k, seed=seed)
    t_cluster = time.perf_counter() - t0 - t_features

    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(len(rows), size=min(MAP_POINTS, len(rows)), replace=False))
    xy, used_map = embed_2d(x[shown], map_method, seed)

    labeled = [i for i, r in enumerate(rows) if r.label is not None]
    metrics = agreement([rows[i].label for i in labeled], result.labels[labeled]) if labeled else None
    clusters: list[dict[str, Any]] = []
    for cid in sorted(set(result.labels.tolist())):
        members = [i for i in range(len(rows)) if result.labels[i] == cid]
        counts = Counter(rows[i].label for i in members if rows[i].label is not None)
        clusters.append(
            {
                "cluster": int(cid),
                "size": len(members),
                "image_ids": [rows[i].id for i in members],
                "labels": dict(counts.most_common()),
            }
        )
    summary: dict[str, Any] = {
        "features": ext.name,
        "embedding": choice.text,
        "method": result.method,
        "k": result.k,
        "k_chosen_by": "silhouette" if result.k_scores else ("hdbscan" if method == "hdbscan" else "user"),
        "silhouette": result.silhouette,
        "k_scores": {str(kk): v for kk, v in result.k_scores.items()},
        "n_images": len(rows),
        "metrics": metrics,
        "map_method": used_map,
        "seconds": {"features": round(t_features, 3), "cluster": round(t_cluster, 3)},
        "clusters": clusters,
        "skipped_images": skipped_dicts(skipped),
    }
    out = out_dir or ws.root / CLUSTERS_DIR
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "clusters.json"
    write_json(json_path, summary)

    from picsift.cluster.report import GALLERY_THUMBS, THUMB_SOURCE, render, thumb_uri

    gallery_ids = {i for c in clusters for i in c["image_ids"][:GALLERY_THUMBS]}
    show_rows = [rows[i] for i in shown]
    need = {r.id: r for r in show_rows} | {r.id: r for r in rows if r.id in gallery_ids}
    pixels, failed = DecodedCache(ws.cache_dir, THUMB_SOURCE).get_available(
        [(r.sha256, r.path) for r in need.values()], "thumbnails"
    )
    shown_ids = [rid for i, rid in enumerate(need) if i not in failed]
    thumbs = {rid: thumb_uri(img) for rid, img in zip(shown_ids, pixels, strict=True)}
    points = [
        {"id": r.id, "x": float(p[0]), "y": float(p[1]), "cluster": int(result.labels[i]), "label": r.label,
         "path": r.path}
        for r, p, i in zip(show_rows, xy, shown, strict=True)
    ]  # fmt: skip
    html_path = out / "clusters.html"
    html_path.write_text(render(summary, points, thumbs, app))
    log.info("clustered %d images into %d groups (%s)", len(rows), result.k, result.method)
    return ClusterResult(summary, json_path, html_path)
