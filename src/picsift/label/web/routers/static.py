"""The browser UI: the page at / (which keeps the token from its URL in a cookie) and its files under /static/."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from picsift.label.web.deps import TOKEN_COOKIE, SettingsDep

STATIC = Path(__file__).resolve().parents[2] / "static"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}

router = APIRouter(tags=["ui"], include_in_schema=False)


def static_file(name: str) -> Path | None:
    """The file `name` (e.g. "js/main.js") names inside the static folder, or None: nothing outside it
    (no "..", no absolute path, no link out), and only the types the UI uses."""
    root = STATIC.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path.suffix not in CONTENT_TYPES or not path.is_file():
        return None
    return path


@router.get("/")
def index(request: Request, settings: SettingsDep) -> Response:
    response = FileResponse(STATIC / "index.html", media_type="text/html")
    token = request.query_params.get("token")
    if settings.token and token:
        # The browser keeps the token in a cookie, so images and API calls need no query string.
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    path = static_file(name)
    if path is None:
        raise HTTPException(404, f"no static file {name}")
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix])
