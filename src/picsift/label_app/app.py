"""The labelling app factory: `create_app(settings)` builds it all; nothing is created at import time.

Every route requires the access token when settings.token is set; a state-changing request must show it does
not come from another site (X-Picsift-Client header, Origin); a request for a host name the app is not reached
by (DNS rebinding) gets 421 before any route runs. Every label change goes through the
catalog with the annotator's name and time; a write based on a stale version gets HTTP 409 with the
catalog's message (the later writer loses, never silently). Typed errors become HTTP statuses through
the mapping shared with the model server (`picsift.web.errors`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request

from picsift.errors import PicsiftError
from picsift.label.jobs import Jobs
from picsift.label.scoring import PredictionCache
from picsift.label_app.deps import require_same_origin, require_token
from picsift.label_app.routers import classes, exclusions, feedback, images, jobs, labels, proposals, queue, static
from picsift.label_app.settings import LabelSettings
from picsift.web.errors import ApiError, disk_error_response, error_response, picsift_error_response
from picsift.web.hosts import HostCheck, allowed_host_names
from picsift.web.responses import StrictJSONResponse


def create_app(settings: LabelSettings) -> FastAPI:
    """The labelling app for one workspace."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for ws in app.state.workspaces.values():
            ws.close()

    # No interactive docs: every route, documentation included, would have to sit behind the token.
    app = FastAPI(
        title="picsift label",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        default_response_class=StrictJSONResponse,  # NaN in a metric -> null, never a 500
    )
    app.state.settings = settings
    app.state.workspaces = {}
    app.state.lock = threading.Lock()
    app.state.predictions = PredictionCache()
    app.state.jobs = Jobs()
    guard = [Depends(require_token), Depends(require_same_origin)]
    for module in (static, images, labels, classes, proposals, exclusions, feedback, queue, jobs):
        app.include_router(module.router, dependencies=guard)

    @app.exception_handler(ApiError)
    def api_error(_request: Request, exc: ApiError) -> StrictJSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(PicsiftError)
    def picsift_error(_request: Request, exc: PicsiftError) -> StrictJSONResponse:
        return picsift_error_response(exc)

    @app.exception_handler(OSError)
    def os_error(_request: Request, exc: OSError) -> StrictJSONResponse:
        response = disk_error_response(exc)  # a full or read-only disk: 507, the write was not made
        if response is None:
            raise exc
        return response

    app.add_middleware(HostCheck, allowed=allowed_host_names(settings.host, settings.allowed_hosts))
    return app
