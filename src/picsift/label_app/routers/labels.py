"""POST /api/labels: label images by hand; a stale expected version is a 409 naming the image."""

from __future__ import annotations

from fastapi import APIRouter

from picsift.label.edits import set_labels
from picsift.label_app.deps import AnnotatorDep, WorkspaceDep
from picsift.label_app.schemas import LabelBody
from picsift.web.responses import StrictJSONResponse

router = APIRouter(prefix="/api/labels", tags=["labels"])


@router.post("")
def label_images(body: LabelBody, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    """Label images (None removes the label). A stale expected version -> 409 for that image."""
    out = set_labels(ws.catalog, body.image_ids, body.label, annotator=who, expected_versions=body.expected_versions)
    return StrictJSONResponse(
        {"applied": out.applied, "conflicts": out.conflicts, "detail": out.detail},
        status_code=409 if out.conflicts else 200,
    )
