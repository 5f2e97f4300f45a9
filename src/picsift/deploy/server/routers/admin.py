"""POST /v1/admin/reload: hot-swap to a newer bundle without dropping requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from picsift.deploy.server.deps import get_state, require_api_key
from picsift.deploy.server.state import ServerState
from picsift.errors import PicsiftError
from picsift.web.errors import ApiError

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_api_key)])


@router.post("/reload", summary="Load the bundle again (or another one given as {'bundle': PATH})")
async def reload(request: Request, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Hot-swap to the bundle given as {"bundle": PATH}, or re-read the current one; requests in flight
    finish on the old model. 400/422 for a bad body, 409 when loading fails (the current model keeps serving)."""
    bundle = None
    if await request.body():
        try:
            body = await request.json()
        except ValueError as e:
            raise ApiError(400, "invalid_json", f'body must be JSON like {{"bundle": "PATH"}}: {e}') from e
        if not isinstance(body, dict) or not isinstance(body.get("bundle", ""), str):
            raise ApiError(422, "invalid_field", "body must be a JSON object with an optional string 'bundle'")
        bundle = Path(body["bundle"]) if body.get("bundle") else None
    try:
        return await state.reload(bundle)
    except PicsiftError as e:
        raise ApiError(409, "reload_failed", f"kept serving the current model: {e}") from e
