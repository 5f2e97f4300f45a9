"""Exclude images from training and include them again, as reversible catalog actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from picsift.label.edits import exclude_images, include_images, undo_exclusion
from picsift.label_app.deps import AnnotatorDep, WorkspaceDep
from picsift.label_app.schemas import ActionBody, ExcludeBody, IncludeBody
from picsift.web.errors import conflict_response, error_responses
from picsift.web.responses import StrictJSONResponse

router = APIRouter(prefix="/api/exclusions", tags=["exclusions"])


@router.get("")
def exclusions(ws: WorkspaceDep) -> list[dict[str, Any]]:
    """GET /api/exclusions: the images excluded from training."""
    return ws.catalog.exclusions()


@router.post("", responses=error_responses(404))
def exclude(body: ExcludeBody, ws: WorkspaceDep, who: AnnotatorDep) -> dict[str, Any]:
    """POST /api/exclusions: exclude images from training as one undoable action; returns its id."""
    action_id = exclude_images(ws.catalog, body.image_ids, reason=body.reason, actor=who)
    return {"action_id": action_id, "excluded": body.image_ids}


@router.post("/undo", responses=error_responses(404))
def undo(body: ActionBody, ws: WorkspaceDep) -> dict[str, Any]:
    """POST /api/exclusions/undo: undo an exclusion action; returns the images it included again."""
    return {"undone": body.action_id, "images": undo_exclusion(ws.catalog, body.action_id)}


@router.post("/include", responses=error_responses(404, 409))
def include(body: IncludeBody, ws: WorkspaceDep) -> StrictJSONResponse:
    """Include images again; 409 naming the action when that would bring back images not asked for."""
    out = include_images(ws.catalog, body.image_ids)
    result = {"undone": out.undone, "included": out.included, "conflicts": out.conflicts}
    if out.conflicts:
        return conflict_response({**result, "detail": out.detail}, "exclusion_conflict")
    return StrictJSONResponse(result)
