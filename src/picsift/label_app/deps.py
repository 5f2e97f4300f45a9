"""Dependencies injected into the routes (as `Annotated` aliases): settings, workspace, predictions, jobs,
the annotator's name, the access-token check and the cross-site request check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from picsift.label.jobs import Jobs
from picsift.label.scoring import PredictionCache
from picsift.label_app.settings import LabelSettings
from picsift.runs import workspace_run
from picsift.store import Workspace
from picsift.web.auth import require_secret
from picsift.web.errors import ApiError
from picsift.web.hosts import SAFE_METHODS, cross_site_origin

TOKEN_COOKIE = "picsift_token"  # the prefix of the cookie's name: `token_cookie` adds the port
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
TOKEN_MESSAGE = "missing or wrong token: open the URL printed by `picsift label` (it ends with ?token=...)"
PAGE_PATH = "/"  # the one route that takes the token from the URL (it moves it into a cookie)
CLIENT_HEADER = "x-picsift-client"  # sent by the page with every request; a cross-site form cannot send it


def get_settings(request: Request) -> LabelSettings:
    """The app's `LabelSettings`."""
    return request.app.state.settings


SettingsDep = Annotated[LabelSettings, Depends(get_settings)]


def get_workspace(request: Request, settings: SettingsDep) -> Workspace:
    """The app's workspace, opened once and shared by the requests (closed when the app stops)."""
    state = request.app.state
    with state.lock:
        ws = state.workspaces.get(settings.workspace)
        if ws is None:
            ws = Workspace.open(settings.workspace)
            state.workspaces[settings.workspace] = ws
    return ws


def get_predictions(request: Request) -> PredictionCache:
    """The app's shared cache of each run's predictions."""
    return request.app.state.predictions


def get_jobs(request: Request) -> Jobs:
    """The app's registry of background jobs."""
    return request.app.state.jobs


def get_annotator(request: Request, settings: SettingsDep) -> str:
    """Who is labelling: the browser's X-Picsift-User header, else the server's default name."""
    name = (request.headers.get("x-picsift-user") or "").strip()[:100]
    return name or settings.default_annotator


def run_of_workspace(ws: Workspace, run: str | None) -> str | None:
    """The folder of the run a client names (`?run=`: an id or a unique prefix of one), as the labelling tools
    take it; None (their default run) when none is named. A path, or a name no run of the workspace has, is
    refused with RunNotFoundError (404): the app reads no folder outside the workspace's runs."""
    return str(workspace_run(ws, run).path) if run else None


def token_cookie(request: Request) -> str:
    """The name of the cookie holding the access token: `picsift_token_<port>`, the port the browser addressed
    (its Host header; 80 or 443 when it names none). A browser keeps cookies by host name alone, ignoring the
    port, so two labelling apps on one host (8765 and 8766) would otherwise overwrite each other's token."""
    port = request.url.port or DEFAULT_PORTS.get(request.url.scheme, 80)
    return f"{TOKEN_COOKIE}_{port}"


def require_token(request: Request, settings: SettingsDep) -> None:
    """With a token set: X-Picsift-Token, the cookie the page sets, or `Authorization: Bearer`; `?token=` only
    on the page itself (GET /), which moves it into the cookie, so it never sits in an API URL or a log."""
    on_page = request.url.path == PAGE_PATH and request.method in ("GET", "HEAD")
    require_secret(
        request,
        settings.token,
        name="token",
        header="x-picsift-token",
        query="token" if on_page else None,
        cookie=token_cookie(request),
        missing_message=TOKEN_MESSAGE,
        invalid_message=TOKEN_MESSAGE,
    )


def require_same_origin(request: Request) -> None:
    """Refuse (403) a state-changing request another site could have made the browser send (CSRF).

    A POST/PUT/PATCH/DELETE must carry X-Picsift-Client (the page's scripts send it), X-Picsift-Token or an
    `Authorization` header: none of them can be set by a cross-site form, and a cross-site script setting them
    is stopped by the browser's CORS preflight (the app allows no other origin). An `Origin` header, when
    present, must name the host the request was sent to ("null" counts as another site).
    """
    if request.method in SAFE_METHODS:
        return
    origin = cross_site_origin(dict(request.headers.raw), request.method)
    if origin is not None:
        raise ApiError(
            403, "cross_origin", f"refused a {request.method} request from a page of another site ({origin})"
        )
    headers = request.headers
    if not (headers.get(CLIENT_HEADER) or headers.get("x-picsift-token") or headers.get("authorization")):
        raise ApiError(
            403,
            "missing_client_header",
            f"a {request.method} request needs the header X-Picsift-Client (any value), X-Picsift-Token or "
            "Authorization: the labelling page sends it; scripts should too (it stops cross-site forms)",
        )


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
PredictionsDep = Annotated[PredictionCache, Depends(get_predictions)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
AnnotatorDep = Annotated[str, Depends(get_annotator)]
