"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.state import ServerState

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_api_key)])


@router.get("/metrics", summary="Prometheus metrics: requests, latency, batch sizes")
def metrics(state: ServerState = Depends(get_state)) -> Response:
    """The server's Prometheus metrics in text exposition format."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
