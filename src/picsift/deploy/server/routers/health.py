"""GET /healthz (liveness, always open) and GET /readyz (a model is loaded and the batcher runs)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.schemas import Health, Readiness, documented
from picsift.deploy.server.state import ServerState
from picsift.web.errors import error_responses
from picsift.web.responses import StrictJSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
def healthz() -> dict[str, str]:
    """Liveness: {"status": "ok"} while the process answers (no API key needed)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: a model is loaded",
    dependencies=[Depends(require_api_key)],
    responses={
        200: documented(Readiness, "A model is loaded"),
        503: documented(Readiness, "No model loaded yet"),
        **error_responses(401, 403, 421),
    },
)
def readyz(state: ServerState = Depends(get_state)) -> StrictJSONResponse:
    """Readiness: {"status": "ready", "version"} once a model is loaded, else 503 {"status": "loading"}."""
    if not state.ready or state.predictor is None:
        return StrictJSONResponse({"status": "loading"}, status_code=503)
    return StrictJSONResponse({"status": "ready", "version": state.predictor.version})
