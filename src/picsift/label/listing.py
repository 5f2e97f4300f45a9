"""What the labelling app lists: pages of images filtered and sorted, one image in detail, classes, clusters.

Plain functions over a workspace, returning JSON-ready dicts; the web routers only pass them on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsift.errors import ConfigError, PicsiftError, RunNotFoundError
from picsift.label.autolabel import load_clusters
from picsift.label.findings import findings_for, load_findings
from picsift.label.scoring import PredictionCache, latest_run, run_choices
from picsift.labels_text import normalize_label
from picsift.store import Catalog, ImageRow, Workspace
from picsift.store.feedback_store import FeedbackStore

log = logging.getLogger("picsift.label")

VIEWS = ("all", "unlabeled", "labeled", "proposed", "excluded", "findings")
VIEW_SPELLINGS = {"unlabelled": "unlabeled", "labelled": "labeled"}
SORTS = ("id", "confidence", "uncertainty", "finding")


@dataclass(frozen=True)
class ImageQuery:
    """One page of the image list.

    view: all | unlabeled | labeled | proposed | excluded | findings (images a `picsift clean` finding names,
    excluded ones included); label/split: keep only that label or split; finding: keep only images a finding of
    that kind names; sort: id (catalog order) | confidence (most confident first) | uncertainty (least
    confident first) | finding (highest finding score first); ids: exactly these images, in this order
    (excluded ones included); run: the run whose predictions the page carries (default: `latest_run`).
    """

    view: str = "all"
    label: str | None = None
    split: str | None = None
    sort: str = "id"
    ids: list[int] | None = None
    offset: int = 0
    limit: int = 200
    finding: str | None = None
    run: str | None = None

    def validate(self) -> ImageQuery:
        """Self (British spellings of a view, "unlabelled" and "labelled", as the page shows them, read as the
        API's); ConfigError naming the accepted values for an unknown view or sort."""
        if self.view in VIEW_SPELLINGS:
            return dataclasses.replace(self, view=VIEW_SPELLINGS[self.view]).validate()
        if self.view not in VIEWS:
            raise ConfigError(f"unknown view {self.view!r}: all, unlabeled, labeled, proposed, excluded or findings")
        if self.sort not in SORTS:
            raise ConfigError(f"unknown sort {self.sort!r}: id, confidence, uncertainty or finding")
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


def findings_by_image(findings: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """{image id: the findings naming it, highest score first}."""
    out: dict[int, list[dict[str, Any]]] = {}
    for f in findings:
        for image_id in f["image_ids"]:
            out.setdefault(image_id, []).append(f)
    for found in out.values():
        found.sort(key=lambda f: -_score(f))
    return out


def _score(finding: dict[str, Any]) -> float:
    try:
        return float(finding.get("score") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def finding_badges(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a card shows of its findings: [{"kind", "score", "given_label", "suggested_label"}] (labels: None
    unless the finding is a suspected label error)."""
    out = []
    for f in found:
        details = f.get("details")
        details = details if isinstance(details, dict) else {}
        out.append(
            {
                "kind": f.get("kind"),
                "score": _score(f),
                "given_label": details.get("given_label"),
                "suggested_label": details.get("suggested_label"),
            }
        )
    return out


def filter_rows(
    catalog: Catalog,
    query: ImageQuery,
    proposals: dict[int, dict[str, Any]],
    findings: dict[int, list[dict[str, Any]]] | None = None,
) -> list[ImageRow]:
    """The catalog rows a (validated) query selects, in catalog order, or in `query.ids` order when given.

    Unreadable images are listed; excluded ones only in the views all, excluded and findings, or when asked
    for by id. `findings`: `findings_by_image` of the workspace (the view findings and the finding filter).
    """
    findings = findings or {}
    rows = catalog.images(
        split=query.split or None,
        labeled={"unlabeled": False, "labeled": True}.get(query.view),
        readable=None,
        include_excluded=query.view in ("excluded", "all", "findings") or query.ids is not None,
        ids=query.ids,
    )
    if query.view == "excluded":
        rows = [x for x in rows if x.excluded]
    if query.label and query.label.strip():
        wanted = normalize_label(query.label)
        rows = [x for x in rows if x.label == wanted]
    if query.view == "proposed":
        rows = [x for x in rows if x.id in proposals]
    if query.view == "findings":
        rows = [x for x in rows if x.id in findings]
    if query.finding:
        rows = [x for x in rows if any(f.get("kind") == query.finding for f in findings.get(x.id, []))]
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


def sort_by_finding(
    rows: list[ImageRow], findings: dict[int, list[dict[str, Any]]], kind: str | None
) -> list[ImageRow]:
    """Rows by the highest score of their findings (of `kind` when given), highest first; rows without one
    go last. Scores are comparable within a kind only, so filter by kind for a meaningful order."""

    def key(row: ImageRow) -> float:
        scores = [_score(f) for f in findings.get(row.id, []) if kind is None or f.get("kind") == kind]
        return -max(scores) if scores else float("inf")

    return sorted(rows, key=key)


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


def image_item(
    row: ImageRow,
    proposal: dict[str, Any] | None,
    pred: dict[str, Any] | None,
    findings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One image as the grid shows it; "disagrees": it has a label and the model's top class is another."""
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
        "disagrees": bool(row.label is not None and pred is not None and pred["label"] != row.label),
        "findings": finding_badges(findings or []),
    }


def list_images(ws: Workspace, preds: PredictionCache, query: ImageQuery) -> dict[str, Any]:
    """A page of images: {"total", "offset", "run", "items"}.

    Sorting by confidence or uncertainty needs a trained run (RunNotFoundError otherwise). In the other orders
    the page carries the run's predictions when it can; a broken run does not hide the images.
    """
    query = query.validate()
    proposals = pending_proposals(ws.catalog)
    findings = findings_by_image(load_findings(ws.root))
    rows = filter_rows(ws.catalog, query, proposals, findings)
    probs: dict[int, np.ndarray] = {}
    classes: list[str] = []
    run = None
    if query.sort in ("confidence", "uncertainty"):
        probs, classes, run = preds.get(ws, rows, query.run)
        if run is None:
            raise RunNotFoundError("sorting by model confidence needs a trained run: press Train first")
        rows = sort_by_confidence(rows, probs, query.sort)
    elif query.sort == "finding":
        rows = sort_by_finding(rows, findings, query.finding)
    page = rows[query.offset : query.offset + query.limit]
    if query.sort not in ("confidence", "uncertainty") and page:
        try:
            probs, classes, run = preds.get(ws, page, query.run)
        except PicsiftError:  # a broken run must not hide the images
            if query.run:
                raise
            log.warning("predictions unavailable", exc_info=True)
    return {
        "total": len(rows),
        "offset": query.offset,
        "run": run,
        "items": [
            image_item(x, proposals.get(x.id), prediction_summary(probs.get(x.id), classes), findings.get(x.id))
            for x in page
        ],
    }


def image_detail(ws: Workspace, preds: PredictionCache, image_id: int, run: str | None = None) -> dict[str, Any]:
    """One image with its metadata, label history, proposals and findings (NotFoundError for an unknown id),
    with the predictions of `run` (default: `latest_run`)."""
    row = ws.catalog.image(image_id)
    props = ws.catalog.proposals([image_id])
    pred = None
    if row.readable:
        try:
            probs, classes, _ = preds.get(ws, [row], run)
            pred = prediction_summary(probs.get(row.id), classes)
        except PicsiftError:
            log.warning("prediction unavailable for image %d", image_id, exc_info=True)
    found = findings_for(load_findings(ws.root), image_id)
    out = image_item(row, props[0] if props else None, pred, found)
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
        findings=found,
    )
    return out


def class_counts(catalog: Catalog) -> list[dict[str, Any]]:
    """Every class with the number of labelled images (excluded ones not counted): [{"name", "count"}]."""
    counts: dict[str, int] = {}
    for row in catalog.images(labeled=True, readable=None):
        counts[row.label or ""] = counts.get(row.label or "", 0) + 1
    return [{"name": c, "count": counts.get(c, 0)} for c in catalog.classes()]


CLUSTER_CARDS = 48  # images shown per cluster: a screenful; the counts cover the rest


def cluster_groups(ws: Workspace) -> dict[str, Any]:
    """The newest saved clustering (`load_clusters`) as the Clusters view shows it.

    Each cluster keeps its catalog images that are not excluded: "image_ids" (unlabelled first, then
    labelled, at most CLUSTER_CARDS), "unlabeled_ids" (all of them), "size" and "labels" ({label: count}).
    Clusters left empty are dropped.
    """
    data = load_clusters(ws)
    rows = {x.id: x for x in ws.catalog.images(readable=None)}
    out = []
    for c in data["clusters"]:
        members = [rows[i] for i in c.get("image_ids", []) if isinstance(i, int) and i in rows]
        if not members:
            continue
        unlabeled = [x.id for x in members if x.label is None]
        labeled = [x.id for x in members if x.label is not None]
        counts = Counter(x.label for x in members if x.label is not None)
        out.append(
            {
                "id": c["id"],
                "size": len(members),
                "image_ids": (unlabeled + labeled)[:CLUSTER_CARDS],
                "unlabeled_ids": unlabeled,
                "labels": dict(counts.most_common()),
            }
        )
    return {**data, "clusters": out}


def finding_kinds(ws: Workspace) -> dict[str, int]:
    """{kind: number of findings} of the workspace's findings.json, most frequent first."""
    counts = Counter(str(f.get("kind")) for f in load_findings(ws.root))
    return dict(counts.most_common())


def workspace_summary(ws: Workspace) -> dict[str, Any]:
    """Counts for the app's header: images, labels, proposals, pending feedback, findings (and per kind), splits,
    the default run (`latest_run`: the latest the user trained) and every run to choose from (`run_choices`)."""
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
        "finding_kinds": finding_kinds(ws),
        "splits": sorted(k for k in s["splits"] if k != "none"),
        "latest_run": run.name if run else None,
        "runs": run_choices(ws),
    }
