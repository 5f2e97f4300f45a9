"""GET /v1/model: the model being served (classes, version, metrics, parity) and the server limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from picsift.deploy.server.deps import get_settings, get_state, require_api_key
from picsift.deploy.server.schemas import ModelInfo, documented
from picsift.deploy.server.settings import ServerSettings
from picsift.deploy.server.state import ServerState
from picsift.web.errors import ApiError, error_responses

router = APIRouter(
    prefix="/v1", tags=["model"], dependencies=[Depends(require_api_key)], responses=error_responses(401, 403, 421, 503)
)


@router.get(
    "/model",
    summary="The served model: classes, version, metrics",
    responses={200: documented(ModelInfo, "The served model")},
)
def model_info(
    state: ServerState = Depends(get_state), settings: ServerSettings = Depends(get_settings)
) -> dict[str, Any]:
    """The served model (classes, version, metrics, parity), when it was loaded, the load history and the
    server limits. 503 while no model is loaded."""
    p = state.predictor
    if p is None:
        raise ApiError(503, "not_ready", "no model loaded yet")
    info = p.info()
    source = info.get("source_run") or {}
    return {
        **info,
        "metrics": {
            "best_val_acc": source.get("best_val_acc"),
            "parity": info.get("parity"),
            "quantization": info.get("quantization"),
        },
        "loaded_at": state.loaded_at,
        "history": state.history,
        "server": settings.public(),
    }
