"""Automated labelling. Everything it produces is a proposal or a grouping; no label is ever overwritten.

method "model":   the latest run predicts every unlabelled image; predictions whose confidence
                  reaches the threshold become proposals (status "proposed", origin "model").
method "cluster": unlabelled images are embedded (a pretrained backbone when installed, see
                  `scoring.embed_rows`) and clustered (k-means or agglomerative); the
                  clusters are written to <workspace>/clusters.json, and the web app shows each
                  cluster so a whole group can be labelled at once after removing the odd ones.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from picsift.config import check_number
from picsift.data.available import SkippedImage, check_strict, skipped_dicts
from picsift.errors import ConfigError, RunNotFoundError, WorkspaceError
from picsift.jsonio import write_json
from picsift.store import Workspace

log = logging.getLogger("picsift.label")

METHODS = ("model", "cluster")
CLUSTERS_FILE = "clusters.json"
CLUSTER_COMMAND_FILE = Path("clusters") / CLUSTERS_FILE  # what `picsift cluster` writes (picsift.cluster.pipeline)


@dataclass
class AutolabelResult:
    """What auto-labelling did: images considered, proposals or clusters written, the run and embedding used."""

    method: str
    considered: int  # unlabelled images looked at
    proposed: int = 0  # proposals written (model method)
    clusters: int = 0  # clusters written (cluster method)
    run: str | None = None
    embeddings: str | None = None
    embedding_text: str | None = None  # which embedding the clusters used and why
    threshold: float | None = None
    per_class: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedImage] = field(default_factory=list)  # files missing on disk or no longer decoding

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, the skipped files under "skipped_images"."""
        out = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        return {**out, "skipped_images": skipped_dicts(self.skipped)}


def autolabel_model(
    ws: Workspace,
    threshold: float = 0.9,
    *,
    run: str | Path | None = None,
    annotator: str = "autolabel",
    strict: bool = False,
) -> AutolabelResult:
    """Propose the latest run's prediction for each unlabelled image whose confidence >= threshold.

    Images whose file is missing on disk or no longer decodes are skipped (`result.skipped`), or raise
    MissingImagesError with `strict`."""
    from picsift.label.scoring import latest_run, predict_rows

    check_number(threshold, "--threshold (a probability)", low=0, high=1)
    run_dir = latest_run(ws, run)
    if run_dir is None:
        raise RunNotFoundError(
            f"no trained run in {ws.root}: label some images and run `picsift train` first, "
            "or use `picsift autolabel --method cluster`"
        )
    rows = ws.catalog.images(labeled=False)
    scored, probs, classes, skipped = predict_rows(ws, rows, run_dir)
    check_strict(skipped, strict, "autolabel")
    result = AutolabelResult("model", len(rows), run=run_dir.name, threshold=threshold, skipped=skipped)
    items = []
    for row, p in zip(scored, probs, strict=True):
        k = int(np.argmax(p))
        if float(p[k]) >= threshold:
            items.append((row.id, classes[k], float(p[k])))
            result.per_class[classes[k]] = result.per_class.get(classes[k], 0) + 1
    result.proposed = ws.catalog.propose_labels(items, origin="model", annotator=annotator)
    log.info("proposed %d labels for %d unlabelled images", result.proposed, len(rows))
    return result


def cluster_embeddings(x: np.ndarray, n_clusters: int, algorithm: str = "kmeans", seed: int = 0) -> np.ndarray:
    """(N, D) embeddings -> (N,) cluster index; vectors are centred and L2-normalised first."""
    from sklearn.cluster import AgglomerativeClustering, KMeans

    z = np.asarray(x, dtype=np.float64)
    z = z - z.mean(axis=0)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    if z.shape[1] > 64 and len(z) > 64:  # PCA first: faster, and less noise in the distances
        from sklearn.decomposition import PCA

        z = PCA(n_components=64, random_state=seed).fit_transform(z)
    if algorithm == "kmeans":
        return np.asarray(KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(z))
    if algorithm == "agglomerative":
        return np.asarray(AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(z))
    raise ConfigError(f"unknown clustering {algorithm!r}; choose kmeans or agglomerative")


def autolabel_cluster(
    ws: Workspace,
    *,
    n_clusters: int | None = None,
    algorithm: str = "kmeans",
    extractor: str | None = None,
    seed: int = 0,
    strict: bool = False,
) -> AutolabelResult:
    """Cluster unlabelled images and write clusters.json (largest cluster first, members by centrality).

    Images whose file is missing on disk or no longer decodes are left out (`result.skipped`), or raise
    MissingImagesError with `strict`."""
    from picsift.data.available import split_present
    from picsift.label.scoring import embed_rows

    rows, skipped = split_present(ws.catalog.images(labeled=False))
    check_strict(skipped, strict, "autolabel")
    if len(rows) < 2:
        raise WorkspaceError(f"clustering needs at least 2 unlabelled images, found {len(rows)}")
    if n_clusters is None:
        # About one cluster per ~20 images, so a cluster fits on a screen; at least the class count.
        n_clusters = max(len(ws.catalog.classes()), round(len(rows) / 20), 2)
    n_clusters = max(2, min(int(n_clusters), len(rows)))
    embedded = embed_rows(ws, rows, extractor)
    rows, emb, emb_name = embedded.rows, embedded.vectors, embedded.name
    check_strict(embedded.skipped, strict, "autolabel")
    skipped += embedded.skipped
    if len(rows) < n_clusters:
        raise WorkspaceError(f"only {len(rows)} unlabelled images can be read, fewer than {n_clusters} clusters")
    assign = cluster_embeddings(emb, n_clusters, algorithm, seed)
    z = emb - emb.mean(axis=0)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    clusters: list[dict[str, Any]] = []
    for c in np.unique(assign):
        members = np.flatnonzero(assign == c)
        centre = z[members].mean(axis=0)
        dist = np.linalg.norm(z[members] - centre, axis=1)
        order = members[np.argsort(dist)]
        clusters.append(
            {
                "image_ids": [rows[i].id for i in order],
                "spread": float(dist.mean()),
            }
        )
    clusters.sort(key=lambda c: -len(c["image_ids"]))
    for i, c in enumerate(clusters):
        c["id"] = i
    payload = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "algorithm": algorithm,
        "embeddings": emb_name,
        "embedding": embedded.text,
        "clusters": clusters,
    }
    write_json(ws.root / CLUSTERS_FILE, payload, indent=1)
    return AutolabelResult(
        "cluster",
        len(rows) + len(skipped),
        clusters=len(clusters),
        embeddings=emb_name,
        embedding_text=embedded.text,
        skipped=skipped,
    )


def load_clusters(ws: Workspace) -> dict[str, Any]:
    """The newest saved clustering: `autolabel --method cluster`'s clusters.json or `picsift cluster`'s
    clusters/clusters.json, whichever was written last, with "source" naming the command and every cluster
    carrying an "id"; an empty grouping ({"clusters": [], "source": None}) when neither exists.

    WorkspaceError naming the file when it is not valid JSON.
    """
    sources = [
        (ws.root / CLUSTERS_FILE, "picsift autolabel --method cluster"),
        (ws.root / CLUSTER_COMMAND_FILE, "picsift cluster"),
    ]
    found = [(p, name) for p, name in sources if p.is_file()]
    if not found:
        return {"clusters": [], "source": None}
    path, source = max(found, key=lambda pn: pn[0].stat().st_mtime)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WorkspaceError(f"{path} is not valid JSON ({e}); rerun `{source}`") from e
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), list):
        raise WorkspaceError(f"{path} holds no list of clusters; rerun `{source}`")
    clusters = [
        {**c, "id": c.get("id", c.get("cluster", i))} for i, c in enumerate(data["clusters"]) if isinstance(c, dict)
    ]
    return {**data, "clusters": clusters, "source": source, "path": str(path)}


def autolabel(
    ws: Workspace,
    method: str = "model",
    *,
    threshold: float = 0.9,
    run: str | Path | None = None,
    n_clusters: int | None = None,
    algorithm: str = "kmeans",
    extractor: str | None = None,
    annotator: str = "autolabel",
    strict: bool = False,
) -> AutolabelResult:
    """The entry point the CLI and the web app share."""
    if method == "model":
        return autolabel_model(ws, threshold, run=run, annotator=annotator, strict=strict)
    if method == "cluster":
        return autolabel_cluster(ws, n_clusters=n_clusters, algorithm=algorithm, extractor=extractor, strict=strict)
    raise ConfigError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}")
