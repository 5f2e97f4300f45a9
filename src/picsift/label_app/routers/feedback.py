"""Review the corrections a served model collected (deploy stage): list them, see their image, accept or reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from picsift.errors import ImageDecodeError
from picsift.label.edits import feedback_plans, review_feedback, undo_feedback_accept
from picsift.label.thumbs import preview
from picsift.label_app.deps import AnnotatorDep, SettingsDep, WorkspaceDep
from picsift.label_app.routers.images import FULL_SIZE
from picsift.label_app.schemas import FeedbackIds, FeedbackUndoBody, PathId
from picsift.store import Workspace
from picsift.store.feedback_store import FeedbackStore
from picsift.web.errors import conflict_response, error_responses
from picsift.web.responses import StrictJSONResponse

router = APIRouter(prefix="/api/feedback", tags=["feedback"])


@router.get("")
def feedback(ws: WorkspaceDep, status: str | None = "pending") -> dict[str, Any]:
    """status: pending (default) | accepted | rejected | all. Pending items carry "plan": what accepting
    them would do (`feedback_plans`: a new class, agreement with the model, the catalogued image relabelled)."""
    items = FeedbackStore(ws).items(None if status in (None, "", "all") else status)
    plans = feedback_plans(ws, [i for i in items if i.status == "pending"])
    return {"items": [{**i.to_dict(), "plan": plans.get(i.id)} for i in items], "classes": ws.catalog.classes()}


@router.get(
    "/{feedback_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG"}, **error_responses(404)},
)
def feedback_image(feedback_id: PathId, ws: WorkspaceDep, settings: SettingsDep, full: bool = False) -> Response:
    """The feedback's image as a JPEG: a thumbnail, or with `full` the single-image view's size."""
    store = FeedbackStore(ws)
    item = store.get(feedback_id)
    if not item.image_path:
        raise HTTPException(404, f"feedback {feedback_id} carries no image")
    path = store.image_file(item)
    if path is None:
        raise HTTPException(404, f"feedback {feedback_id}: its image is missing from the workspace")
    try:
        data = preview(path, FULL_SIZE, quality=90) if full else preview(path, settings.thumb_size)
    except (ImageDecodeError, OSError) as e:
        raise HTTPException(404, f"feedback {feedback_id}: image cannot be decoded: {e}") from e
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


def _reviewed(ids: list[int], ws: Workspace, who: str, accept: bool, confirm: bool = False) -> StrictJSONResponse:
    out = review_feedback(FeedbackStore(ws), ids, reviewer=who, accept=accept, confirmed=confirm)
    body: dict[str, Any] = {"accepted" if accept else "rejected": out.done, "errors": out.errors}
    if out.errors:
        return conflict_response({**body, "detail": out.detail}, "feedback_not_reviewed")
    return StrictJSONResponse(body)


@router.post("/accept", responses=error_responses(404, 409))
def accept(body: FeedbackIds, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    """Accepted feedback enters the catalog labelled (split "feedback"), for `train --with-feedback`. Without
    "confirm": true, items that would create a class or relabel a labelled image are refused (409, listed
    under errors with "needs_confirmation")."""
    return _reviewed(body.ids, ws, who, accept=True, confirm=body.confirm)


@router.post("/reject", responses=error_responses(404, 409))
def reject(body: FeedbackIds, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    """POST /api/feedback/reject: reject feedback items; 409 listing under errors those that could not be rejected."""
    return _reviewed(body.ids, ws, who, accept=False)


@router.post("/{feedback_id}/undo", responses=error_responses(404, 409))
def undo(feedback_id: PathId, body: FeedbackUndoBody, ws: WorkspaceDep, who: AnnotatorDep) -> dict[str, Any]:
    """Undo accepting a feedback item (`undo_feedback_accept`); 409 when the image changed since `expected_version`."""
    return undo_feedback_accept(FeedbackStore(ws), feedback_id, annotator=who, expected_version=body.expected_version)
