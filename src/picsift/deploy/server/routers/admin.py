"""POST /v1/admin/reload: hot-swap to a newer bundle without dropping requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.reading import read_json
from picsift.deploy.server.schemas import Reloaded, documented
from picsift.deploy.server.state import ServerState
from picsift.errors import PicsiftError
from picsift.web.errors import ApiError, error_responses

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
    responses={200: documented(Reloaded, "The bundle now served")},
)
async def reload(request: Request, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Hot-swap to the bundle given as {"bundle": PATH}, or re-read the current one; requests in flight
    finish on the old model. 400/422 for a bad body, 409 when loading fails (the current model keeps serving)."""
    bundle = None
    if await request.body():
        body = await read_json(request, hint=RELOAD_HINT)
        if not isinstance(body.get("bundle", ""), str) or "\x00" in body.get("bundle", ""):
            raise ApiError(422, "invalid_field", f"'bundle' must be a path without NUL characters; {RELOAD_HINT}")
        bundle = Path(body["bundle"]) if body.get("bundle") else None
    try:
        return await state.reload(bundle)
    except (PicsiftError, OSError) as e:  # OSError: a folder it may not read
        raise ApiError(409, "reload_failed", f"kept serving the current model: {e}") from e
