"""Dependencies injected into routes: settings, server state, and the API key check."""

from __future__ import annotations

from fastapi import Depends, Request

from picsift.deploy.server.settings import ServerSettings
from picsift.deploy.server.state import ServerState
from picsift.web.auth import require_secret


def get_settings(request: Request) -> ServerSettings:
    """The app's ServerSettings."""
    return request.app.state.settings


def get_state(request: Request) -> ServerState:
    """The app's ServerState."""
    return request.app.state.server


def require_api_key(request: Request, settings: ServerSettings = Depends(get_settings)) -> None:
    """With an API key configured, accept `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    require_secret(
        request,
        settings.api_key,
        name="api_key",
        header="x-api-key",
        missing_message="this server requires an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
        invalid_message="the API key is not valid",
    )
