"""Dependencies injected into the routes (as `Annotated` aliases): settings, workspace, predictions, jobs,
the annotator's name, and the access-token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from picsift.label.jobs import Jobs
from picsift.label.scoring import PredictionCache
from picsift.label.web.settings import LabelSettings
from picsift.store import Workspace
from picsift.web.auth import require_secret

TOKEN_COOKIE = "picsift_token"
TOKEN_MESSAGE = "missing or wrong token: open the URL printed by `picsift label` (it ends with ?token=...)"


def get_settings(request: Request) -> LabelSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[LabelSettings, Depends(get_settings)]


def get_workspace(request: Request, settings: SettingsDep) -> Workspace:
    """The app's workspace, opened once and shared by the requests (closed when the app stops)."""
    state = request.app.state
    with state.lock:
        ws = state.workspaces.get(settings.workspace)
        if ws is None:
            ws = Workspace.open(settings.workspace)
            state.workspaces[settings.workspace] = ws
    return ws  # type: ignore[no-any-return]


def get_predictions(request: Request) -> PredictionCache:
    return request.app.state.predictions  # type: ignore[no-any-return]


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs  # type: ignore[no-any-return]


def get_annotator(request: Request, settings: SettingsDep) -> str:
    """Who is labelling: the browser's X-Picsift-User header, else the server's default name."""
    name = (request.headers.get("x-picsift-user") or "").strip()[:100]
    return name or settings.default_annotator


def require_token(request: Request, settings: SettingsDep) -> None:
    """With a token set: X-Picsift-Token, ?token=, the cookie the page sets, or `Authorization: Bearer`."""
    require_secret(
        request,
        settings.token,
        name="token",
        header="x-picsift-token",
        query="token",
        cookie=TOKEN_COOKIE,
        missing_message=TOKEN_MESSAGE,
        invalid_message=TOKEN_MESSAGE,
    )


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
PredictionsDep = Annotated[PredictionCache, Depends(get_predictions)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
AnnotatorDep = Annotated[str, Depends(get_annotator)]
