"""Label proposals (from auto-labelling): list, accept (409 for those labelled otherwise meanwhile), reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from picsift.label.edits import resolve_proposals
from picsift.label_app.deps import AnnotatorDep, WorkspaceDep
from picsift.label_app.schemas import ProposalIds
from picsift.web.errors import conflict_response, error_responses
from picsift.web.responses import StrictJSONResponse

router = APIRouter(prefix="/api/proposals", tags=["proposals"])


@router.get("")
def proposals(ws: WorkspaceDep) -> list[dict[str, Any]]:
    """GET /api/proposals: the pending label proposals."""
    return ws.catalog.proposals()


@router.post("/accept", responses=error_responses(404, 409))
def accept(body: ProposalIds, ws: WorkspaceDep, who: AnnotatorDep) -> StrictJSONResponse:
    """POST /api/proposals/accept: apply the proposals; 409 listing those labelled otherwise meanwhile."""
    out = resolve_proposals(ws.catalog, body.ids, accept=True, annotator=who)
    return conflict_response(out, "label_conflict") if out["conflicts"] else StrictJSONResponse(out)


@router.post("/reject", responses=error_responses(404))
def reject(body: ProposalIds, ws: WorkspaceDep, who: AnnotatorDep) -> dict[str, Any]:
    """POST /api/proposals/reject: discard the proposals."""
    return resolve_proposals(ws.catalog, body.ids, accept=False, annotator=who)
