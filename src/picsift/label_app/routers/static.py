"""The browser UI: the page at / (which moves the token from its URL into a cookie) and its files under /static/."""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from picsift.label_app.deps import SettingsDep, token_cookie

STATIC = Path(__file__).resolve().parents[1] / "static"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}

router = APIRouter(tags=["ui"], include_in_schema=False)


def static_file(name: str) -> Path | None:
    """The file `name` (e.g. "js/main.js") names inside the static folder, or None: nothing outside it
    (no "..", no absolute path, no link out), and only the types the UI uses."""
    root = STATIC.resolve()
    try:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or path.suffix not in CONTENT_TYPES or not path.is_file():
            return None
    except (OSError, ValueError):  # ValueError: a NUL character in the name
        return None
    return path


@router.get("/")
def index(request: Request, settings: SettingsDep) -> Response:
    """The page. Opened as `/?token=...` (the URL `picsift label` prints), it keeps the token in an HttpOnly,
    SameSite=Strict cookie named after the port (`token_cookie`: two apps on one host keep a token each) and redirects to the same URL without it, so the token stays out of the address bar,
    the history and the API's URLs; images and API calls then carry the cookie."""
    token = request.query_params.get("token")
    if token is not None:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        response: Response = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), 303)
        if settings.token and token and hmac.compare_digest(token.encode(), settings.token.encode()):
            response.set_cookie(token_cookie(request), token, httponly=True, samesite="strict")
        return response
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    """GET /static/{name}: one of the UI's files; 404 for anything else."""
    path = static_file(name)
    if path is None:
        raise HTTPException(404, f"no static file {name}")
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix])
