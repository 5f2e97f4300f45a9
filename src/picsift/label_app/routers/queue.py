"""The next batch to label (active learning), the saved clusters, and the header's summary."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from picsift.label.listing import cluster_groups, workspace_summary
from picsift.label.queue import next_batch
from picsift.label_app.deps import AnnotatorDep, SettingsDep, WorkspaceDep, run_of_workspace
from picsift.web.errors import error_responses

router = APIRouter(prefix="/api", tags=["queue"])


@router.get("/queue", responses=error_responses(404))
def queue(
    ws: WorkspaceDep, n: int = Query(24, ge=1, le=500), method: str = "margin", run: str | None = None
) -> dict[str, Any]:
    """GET /api/queue: the next `n` (1..500) images to label, chosen by `method` from a run's predictions."""
    batch = next_batch(ws, n, method=method, run=run_of_workspace(ws, run))
    return {
        "run": batch.run,
        "method": batch.method,
        "embeddings": batch.embeddings,
        "embedding": batch.embedding_text,
        "uncertainty_share": batch.uncertainty_share,
        "items": [i.to_dict() for i in batch.items],
    }


@router.get("/clusters")
def clusters(ws: WorkspaceDep) -> dict[str, Any]:
    """GET /api/clusters: the saved clusters with their images."""
    return cluster_groups(ws)


@router.get("/summary")
def summary(ws: WorkspaceDep, settings: SettingsDep, who: AnnotatorDep) -> dict[str, Any]:
    """GET /api/summary: the workspace's counts for the header, the annotator and whether a token is required."""
    return {**workspace_summary(ws), "annotator": who, "token_required": settings.token is not None}
