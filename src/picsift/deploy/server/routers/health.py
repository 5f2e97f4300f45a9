"""GET /healthz (liveness, always open) and GET /readyz (a model is loaded and the batcher runs)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.state import ServerState

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: a model is loaded", dependencies=[Depends(require_api_key)])
def readyz(state: ServerState = Depends(get_state)) -> JSONResponse:
    if not state.ready or state.predictor is None:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ready", "version": state.predictor.version})
