"""POST /api/labels: label images by hand; a stale expected version is a 409 naming the image."""

from __future__ import annotations

from fastapi import APIRouter

from picsift.label.edits import set_labels
from picsift.label_app.deps import AnnotatorDep, WorkspaceDep
from picsift.label_app.schemas import LabelBody
from picsift.web.errors import conflict_response, error_responses
from picsift.web.responses import StrictJSONResponse

router = APIRouter(prefix="/api/labels", tags=["labels"])


@router.post("", responses=error_responses(404, 409))
def label_images(body: LabelBody, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    """Label images (None removes the label). A stale expected version -> 409 for that image."""
    out = set_labels(ws.catalog, body.image_ids, body.label, annotator=who, expected_versions=body.expected_versions)
    result = {"applied": out.applied, "conflicts": out.conflicts, "detail": out.detail}
    return conflict_response(result, "label_conflict") if out.conflicts else StrictJSONResponse(result)
