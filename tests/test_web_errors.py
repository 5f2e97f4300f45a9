"""What both web apps share: typed errors -> HTTP statuses, and the token / API-key check."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from picsift.deploy.server import ServerSettings
from picsift.deploy.server import create_app as create_server
from picsift.errors import (
    ConfigError,
    ConflictError,
    DatasetError,
    ImageDecodeError,
    ModelNotFoundError,
    NotFoundError,
    PicsiftError,
    RunNotFoundError,
    WorkspaceError,
)
from picsift.store import LabelConflictError, Workspace
from picsift.store.feedback_store import FeedbackStore
from picsift.web.auth import presented_secret, require_secret
from picsift.web.errors import ApiError, http_status
from support.label import app_client, make_workspace


@pytest.mark.parametrize(
    ("error", "label_app", "model_server"),
    [
        (NotFoundError("no image with id 9"), 404, 404),
        (RunNotFoundError("no run"), 404, 404),
        (LabelConflictError("relabelled"), 409, 409),
        (ConfigError("bad"), 400, 422),
        (ImageDecodeError("truncated"), 400, 422),
        (WorkspaceError("empty"), 400, 400),
        (DatasetError("bad csv"), 400, 400),
        (ModelNotFoundError("resnet9000"), 400, 400),
        (PicsiftError("other"), 400, 400),
    ],
)
def test_status_by_error_type(error: PicsiftError, label_app: int, model_server: int) -> None:
    assert http_status(error) == label_app
    assert http_status(error, invalid_input=422) == model_server


def test_new_types_keep_the_old_except_clauses_working() -> None:
    assert issubclass(NotFoundError, WorkspaceError) and issubclass(LabelConflictError, ConflictError)
    assert issubclass(ConflictError, PicsiftError)


def test_not_found_is_404_in_the_label_app(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=1)
    try:
        with app_client(ws) as c:
            r = c.get("/api/images/999")
            assert r.status_code == 404
            assert r.json() == {"error": "NotFoundError", "detail": "no image with id 999 in the catalog"}
            assert c.get("/api/feedback/77/image").json()["error"] == "NotFoundError"
            assert c.post("/api/exclusions", json={"image_ids": [1, 999]}).status_code == 404
            assert ws.catalog.actions() == []
    finally:
        ws.close()


def test_not_found_is_404_in_the_model_server(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    app = create_server(ServerSettings(bundle=tmp_path / "bundle", workspace=ws.root))

    @app.get("/probe/{feedback_id}")
    def probe(feedback_id: int) -> dict[str, str]:  # a real catalog lookup of an unknown feedback id
        FeedbackStore(ws).get(feedback_id)
        return {}

    try:
        r = TestClient(app, base_url="http://localhost").get("/probe/5")  # no lifespan: no model loaded
        assert r.status_code == 404
        assert r.json()["error"] == "NotFoundError" and r.json()["detail"].startswith("no feedback with id 5")
    finally:
        ws.close()


def request(headers: dict[str, str] | None = None, query: str = "", cookie: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode("utf-8")) for k, v in (headers or {}).items()]
    if cookie:
        raw.append((b"cookie", cookie.encode()))
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": raw})


def test_presented_secret_order_header_query_cookie_bearer() -> None:
    where = {"header": "x-key", "query": "token", "cookie": "c"}
    bearer = {"Authorization": "Bearer b"}
    assert presented_secret(request({"X-Key": "h", **bearer}, "token=q", "c=k"), **where) == "h"
    assert presented_secret(request(bearer, "token=q", "c=k"), **where) == "q"
    assert presented_secret(request(bearer, cookie="c=k"), **where) == "k"
    assert presented_secret(request({"X-Key": "", **bearer}), **where) == "b"
    assert presented_secret(request({"Authorization": "Basic b"}), **where) is None
    assert presented_secret(request(query="token=q"), header="x-key") is None  # no query source configured


def test_require_secret_codes_and_non_ascii_guesses() -> None:
    def check(r: Request, expected: str | None = "s3cret") -> str | None:
        try:
            require_secret(r, expected, name="token", header="x-key", missing_message="m", invalid_message="i")
        except ApiError as e:
            assert e.status == 401
            return e.code
        return None

    assert check(request()) == "missing_token"
    assert check(request({"X-Key": "wrong"})) == "invalid_token"
    assert check(request({"X-Key": "sécret"})) == "invalid_token"  # refused, not a TypeError from compare_digest
    assert check(request({"Authorization": "bearer s3cret"})) is None
    assert check(request(), expected=None) is None
