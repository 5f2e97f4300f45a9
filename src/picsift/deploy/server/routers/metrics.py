"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.state import ServerState
from picsift.web.errors import error_responses

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_api_key)], responses=error_responses(401, 403, 421))


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latency, batch sizes",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition format"}},
)
def metrics(state: ServerState = Depends(get_state)) -> Response:
    """The server's Prometheus metrics in text exposition format."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
