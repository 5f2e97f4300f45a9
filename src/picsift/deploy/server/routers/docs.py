"""OpenAPI schema and Swagger UI, behind the API key like every endpoint but /healthz."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from picsift.deploy.server.deps import require_api_key
from picsift.web.responses import StrictJSONResponse

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_api_key)])


@router.get("/openapi.json")
def openapi(request: Request) -> StrictJSONResponse:
    """The OpenAPI schema of the app."""
    return StrictJSONResponse(request.app.openapi())


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """The Swagger UI page for the OpenAPI schema."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - docs")
