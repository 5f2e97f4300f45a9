"""What the labelling app lists: pages of images filtered and sorted, one image in detail, classes, clusters.

Plain functions over a workspace, returning JSON-ready dicts; the web routers only pass them on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsift.deploy.feedback import FeedbackStore
from picsift.errors import ConfigError, PicsiftError, RunNotFoundError
from picsift.label.autolabel import load_clusters
from picsift.label.findings import findings_for, load_findings
from picsift.label.scoring import PredictionCache, latest_run
from picsift.labels_text import normalize_label
from picsift.store import Catalog, ImageRow, Workspace

log = logging.getLogger("picsift.label")

VIEWS = ("all", "unlabeled", "labeled", "proposed", "excluded")
SORTS = ("id", "confidence", "uncertainty")


@dataclass(frozen=True)
class ImageQuery:
    """One page of the image list.

    view: all | unlabeled | labeled | proposed | excluded; label/split: keep only that label or split;
    sort: id (catalog order) | confidence (most confident first) | uncertainty (least confident first);
    ids: exactly these images, in this order (excluded ones included).
    """

    view: str = "all"
    label: str | None = None
    split: str | None = None
    sort: str = "id"
    ids: list[int] | None = None
    offset: int = 0
    limit: int = 200

    def validate(self) -> ImageQuery:
        """Raises ConfigError naming the accepted values for an unknown view or sort."""
        if self.view not in VIEWS:
            raise ConfigError(f"unknown view {self.view!r}: all, unlabeled, labeled, proposed or excluded")
        if self.sort not in SORTS:
            raise ConfigError(f"unknown sort {self.sort!r}: id, confidence or uncertainty")
        return self


def parse_ids(text: str | None) -> list[int] | None:
    """ "3,1,2" -> [3, 1, 2]; None or "" -> None (no id filter). ConfigError for anything but integers."""
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"ids must be comma-separated image ids like 3,1,2; got {text!r}") from e


def pending_proposals(catalog: Catalog) -> dict[int, dict[str, Any]]:
    """The newest pending proposal of each image that has one: {image_id: proposal}."""
    proposals: dict[int, dict[str, Any]] = {}
    for p in catalog.proposals():
        proposals.setdefault(p["image_id"], p)
    return proposals


def filter_rows(catalog: Catalog, query: ImageQuery, proposals: dict[int, dict[str, Any]]) -> list[ImageRow]:
    """The catalog rows a (validated) query selects, in catalog order, or in `query.ids` order when given.

    Unreadable images are listed; excluded ones only in the views all and excluded, or when asked for by id.
    """
    rows = catalog.images(
        split=query.split or None,
        labeled={"unlabeled": False, "labeled": True}.get(query.view),
        readable=None,
        include_excluded=query.view in ("excluded", "all") or query.ids is not None,
        ids=query.ids,
    )
    if query.view == "excluded":
        rows = [x for x in rows if x.excluded]
    if query.label and query.label.strip():
        wanted = normalize_label(query.label)
        rows = [x for x in rows if x.label == wanted]
    if query.view == "proposed":
        rows = [x for x in rows if x.id in proposals]
    if query.ids is not None:
        by_id = {x.id: x for x in rows}
        rows = [by_id[i] for i in query.ids if i in by_id]
    return rows


def sort_by_confidence(rows: list[ImageRow], probs: dict[int, np.ndarray], sort: str) -> list[ImageRow]:
    """Rows by their top probability: sort "confidence" highest first, "uncertainty" lowest first.

    Rows without a prediction go last either way. The sort is stable: ties keep catalog order.
    """
    key = {i: float(np.max(p)) for i, p in probs.items()}
    sign = -1.0 if sort == "confidence" else 1.0
    missing = 0.0 if sort == "confidence" else 2.0
    return sorted(rows, key=lambda x: sign * key.get(x.id, missing))


def prediction_summary(probs: np.ndarray | None, classes: list[str]) -> dict[str, Any] | None:
    """A probability row (K,) -> top label, its confidence, the margin to the runner-up and the top 3."""
    if probs is None or not classes:
        return None
    order = np.argsort(-probs)
    margin = float(probs[order[0]] - probs[order[1]]) if len(order) > 1 else 1.0
    return {
        "label": classes[int(order[0])],
        "confidence": float(probs[order[0]]),
        "margin": margin,
        "top": [{"label": classes[int(i)], "probability": float(probs[i])} for i in order[:3]],
    }


def image_item(row: ImageRow, proposal: dict[str, Any] | None, pred: dict[str, Any] | None) -> dict[str, Any]:
    """One image as the grid shows it."""
    return {
        "id": row.id,
        "name": Path(row.path).name,
        "label": row.label,
        "version": row.label_version,
        "split": row.split,
        "excluded": row.excluded,
        "readable": row.readable,
        "proposal": None if proposal is None else {k: proposal[k] for k in ("id", "label", "confidence", "origin")},
        "prediction": pred,
    }


def list_images(ws: Workspace, preds: PredictionCache, query: ImageQuery) -> dict[str, Any]:
    """A page of images: {"total", "offset", "run", "items"}.

    Sorting by confidence or uncertainty needs a trained run (RunNotFoundError otherwise). In catalog
    order the page carries the latest run's predictions when it can; a broken run does not hide the images.
    """
    query.validate()
    proposals = pending_proposals(ws.catalog)
    rows = filter_rows(ws.catalog, query, proposals)
    probs: dict[int, np.ndarray] = {}
    classes: list[str] = []
    run = None
    if query.sort != "id":
        probs, classes, run = preds.get(ws, rows)
        if run is None:
            raise RunNotFoundError("sorting by model confidence needs a trained run: press Train first")
        rows = sort_by_confidence(rows, probs, query.sort)
    page = rows[query.offset : query.offset + query.limit]
    if query.sort == "id" and page:
        try:
            probs, classes, run = preds.get(ws, page)
        except PicsiftError:  # a broken run must not hide the images
            log.warning("predictions unavailable", exc_info=True)
    return {
        "total": len(rows),
        "offset": query.offset,
        "run": run,
        "items": [image_item(x, proposals.get(x.id), prediction_summary(probs.get(x.id), classes)) for x in page],
    }


def image_detail(ws: Workspace, preds: PredictionCache, image_id: int) -> dict[str, Any]:
    """One image with its metadata, label history, proposals and findings (NotFoundError for an unknown id)."""
    row = ws.catalog.image(image_id)
    props = ws.catalog.proposals([image_id])
    pred = None
    if row.readable:
        try:
            probs, classes, _ = preds.get(ws, [row])
            pred = prediction_summary(probs.get(row.id), classes)
        except PicsiftError:
            log.warning("prediction unavailable for image %d", image_id, exc_info=True)
    out = image_item(row, props[0] if props else None, pred)
    out.update(
        path=row.path,
        sha256=row.sha256,
        width=row.width,
        height=row.height,
        format=row.format,
        mode=row.mode,
        byte_size=row.byte_size,
        exif_time=row.exif_time,
        exif_camera=row.exif_camera,
        gps=[row.gps_lat, row.gps_lon] if row.gps_lat is not None else None,
        error=row.error,
        duplicate_of=row.duplicate_of,
        history=ws.catalog.label_history(image_id),
        proposals=props,
        findings=findings_for(load_findings(ws.root), image_id),
    )
    return out


def class_counts(catalog: Catalog) -> list[dict[str, Any]]:
    """Every class with the number of labelled images (excluded ones not counted): [{"name", "count"}]."""
    counts: dict[str, int] = {}
    for row in catalog.images(labeled=True, readable=None):
        counts[row.label or ""] = counts.get(row.label or "", 0) + 1
    return [{"name": c, "count": counts.get(c, 0)} for c in catalog.classes()]


def unlabeled_clusters(ws: Workspace) -> dict[str, Any]:
    """The saved clusters, each keeping only its images still unlabelled; clusters left empty are dropped."""
    data = load_clusters(ws)
    unlabeled = {x.id for x in ws.catalog.images(labeled=False)}
    out = []
    for c in data.get("clusters", []):
        ids = [i for i in c.get("image_ids", []) if i in unlabeled]
        if ids:
            out.append({**c, "image_ids": ids})
    return {**data, "clusters": out}


def workspace_summary(ws: Workspace) -> dict[str, Any]:
    """Counts for the app's header: images, labels, proposals, pending feedback, findings, splits, latest run."""
    s = ws.catalog.summary()
    run = latest_run(ws)
    return {
        "workspace": str(ws.root),
        "images": s["images"],
        "labeled": s["labeled"],
        "unlabeled": s["unlabeled"],
        "excluded": s["excluded"],
        "proposals": len(ws.catalog.proposals()),
        "feedback": len(FeedbackStore(ws).items("pending")),
        "findings": len(load_findings(ws.root)),
        "splits": sorted(k for k in s["splits"] if k != "none"),
        "latest_run": run.name if run else None,
    }
