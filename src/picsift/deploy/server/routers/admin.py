"""POST /v1/admin/reload: hot-swap to a newer bundle without dropping requests.

One worker process swaps its model between batches. Several worker processes (`--workers N`) each hold a model:
a swap in the one answering would leave the others on the old one, so the request instead has uvicorn's main
process replace every worker, one at a time, each re-reading the served bundle folder (what SIGHUP to the main
process does); another bundle path is refused there (the workers are started from the served folder).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.reading import read_json
from picsift.deploy.server.schemas import Reloaded, documented
from picsift.deploy.server.state import ServerState
from picsift.errors import PicsiftError
from picsift.web.errors import ApiError, error_responses
from picsift.web.responses import StrictJSONResponse

RELOAD_HINT = 'send no body, or a JSON object like {"bundle": "PATH"}'

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(400, 401, 403, 409, 413, 421, 422),
)


@router.post(
    "/reload",
    summary="Load the bundle again (or another one given as {'bundle': PATH})",
    responses={
        200: documented(Reloaded, "The bundle now served"),
        202: {"description": "Several workers: they are replaced one by one"},
    },
)
async def reload(request: Request, state: ServerState = Depends(get_state)) -> Any:
    """Hot-swap to the bundle given as {"bundle": PATH}, or re-read the current one; requests in flight
    finish on the old model. 400/422 for a bad body, 409 when loading fails (the current model keeps serving).
    With several worker processes: 202 while they are replaced one by one (see the module docstring)."""
    bundle = None
    if await request.body():
        body = await read_json(request, hint=RELOAD_HINT)
        if not isinstance(body.get("bundle", ""), str) or "\x00" in body.get("bundle", ""):
            raise ApiError(422, "invalid_field", f"'bundle' must be a path without NUL characters; {RELOAD_HINT}")
        bundle = Path(body["bundle"]) if body.get("bundle") else None
    if state.settings.workers > 1:
        return _restart_workers(state, bundle)
    try:
        return await state.reload(bundle)
    except (PicsiftError, OSError) as e:  # OSError: a folder it may not read
        raise ApiError(409, "reload_failed", f"kept serving the current model: {e}") from e


def _restart_workers(state: ServerState, bundle: Path | None) -> StrictJSONResponse:
    """Several workers: SIGHUP to uvicorn's main process, which replaces them one by one (each new one loads the
    served folder and answers before the old one finishes its requests and exits). ApiError 409 for another
    bundle path, which the new workers would not load."""
    served = state.settings.bundle
    if bundle is not None and bundle.resolve() != served.resolve():
        raise ApiError(
            409,
            "reload_needs_served_folder",
            f"this server runs {state.settings.workers} worker processes, started from the bundle folder {served}: "
            "export the new bundle into that folder, then reload without a bundle path",
        )
    os.kill(os.getppid(), signal.SIGHUP)
    state.metrics.reloads.labels(result="restart").inc()
    body = {"restarting_workers": state.settings.workers, "bundle": str(served), "main_pid": os.getppid()}
    return StrictJSONResponse(body, status_code=202)
