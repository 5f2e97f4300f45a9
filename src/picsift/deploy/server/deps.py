"""Dependencies injected into routes: settings, server state, and the API key check."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request

from picsift.deploy.server.inputs import ApiError
from picsift.deploy.server.settings import ServerSettings
from picsift.deploy.server.state import ServerState


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_state(request: Request) -> ServerState:
    return request.app.state.server  # type: ignore[no-any-return]


def require_api_key(request: Request, settings: ServerSettings = Depends(get_settings)) -> None:
    """With an API key configured, accept `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    if settings.api_key is None:
        return
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is None:
        raise ApiError(
            401,
            "missing_api_key",
            "this server requires an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
        )
    if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise ApiError(401, "invalid_api_key", "the API key is not valid")
