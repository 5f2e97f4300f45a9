"""Review the corrections a served model collected (deploy stage): list them, see their image, accept or reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from picsift.deploy.feedback import FeedbackStore
from picsift.errors import ImageDecodeError
from picsift.label.edits import review_feedback
from picsift.label.thumbs import preview
from picsift.label.web.deps import AnnotatorDep, SettingsDep, WorkspaceDep
from picsift.label.web.schemas import FeedbackIds
from picsift.store import Workspace
from picsift.web.responses import StrictJSONResponse

router = APIRouter(prefix="/api/feedback", tags=["feedback"])


@router.get("")
def feedback(ws: WorkspaceDep, status: str | None = "pending") -> dict[str, Any]:
    """status: pending (default) | accepted | rejected | all."""
    items = FeedbackStore(ws).items(None if status in (None, "", "all") else status)
    return {"items": [i.to_dict() for i in items], "classes": ws.catalog.classes()}


@router.get("/{feedback_id}/image")
def feedback_image(feedback_id: int, ws: WorkspaceDep, settings: SettingsDep) -> Response:
    item = FeedbackStore(ws).get(feedback_id)
    if not item.image_path:
        raise HTTPException(404, f"feedback {feedback_id} carries no image")
    root = ws.root.resolve()
    path = (root / item.image_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(404, f"feedback {feedback_id}: its image is missing from the workspace")
    try:
        data = preview(path, settings.thumb_size)
    except (ImageDecodeError, OSError) as e:
        raise HTTPException(404, f"feedback {feedback_id}: image cannot be decoded: {e}") from e
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


def _reviewed(ids: list[int], ws: Workspace, who: str, accept: bool) -> StrictJSONResponse:
    out = review_feedback(FeedbackStore(ws), ids, reviewer=who, accept=accept)
    body: dict[str, Any] = {"accepted" if accept else "rejected": out.done, "errors": out.errors}
    if out.errors:
        return StrictJSONResponse({**body, "detail": out.detail}, status_code=409)
    return StrictJSONResponse(body)


@router.post("/accept")
def accept(body: FeedbackIds, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    """Accepted feedback enters the catalog labelled (split "feedback"), for `train --with-feedback`."""
    return _reviewed(body.ids, ws, who, accept=True)


@router.post("/reject")
def reject(body: FeedbackIds, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    return _reviewed(body.ids, ws, who, accept=False)
