"""Both web apps fuzzed from their OpenAPI schemas (Schemathesis, in-process) and sent hand-made bad requests,
with the secret on and a real workspace and bundle behind them: no 5xx, no crash, every 4xx a JSON
`{"error", "detail"}` with a readable message, every answer as the schema declares it, and nothing stored lost.
bench/http_fuzz_bench.py runs the same with many more cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.python import asgi

from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings
from picsift.deploy.server import create_app as create_server
from picsift.errors import NotFoundError
from picsift.label_app import LabelSettings
from picsift.label_app import create_app as create_label_app
from picsift.store import Workspace
from picsift.store.feedback_store import FeedbackStore
from support.deploy import make_workspace as deploy_workspace
from support.deploy import train_run
from support.http_fuzz import fuzz_app, label_bad_requests, send_bad_requests, server_bad_requests, unclear_error
from support.label import make_workspace as label_workspace

KEY, TOKEN = "k3y-fuzz", "t0ken-fuzz"
CASES = 8  # per operation and generation mode (positive, negative): the bench runs many more
LABEL_CASES = 6  # the labelling app has 29 operations


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-server")
    return export(train_run(deploy_workspace(root, per_class=6), "fastcnn"), root / "bundle")


@pytest.fixture(scope="module")
def png(bundle: Path) -> bytes:
    return next((bundle.parent / "images" / "1").glob("*.png")).read_bytes()


@pytest.fixture
def label_ws(tmp_path: Path) -> Iterator[Workspace]:
    ws = label_workspace(tmp_path, per_class=4, labelled_per_class=2)
    FeedbackStore(ws).add("1", image=Path(ws.catalog.image(1).path).read_bytes())  # one item to review
    yield ws
    ws.close()


def server(bundle: Path, workspace: Path) -> FastAPI:
    """The model server with its API key, small limits (so the bad requests can exceed them) and a workspace."""
    return create_server(
        ServerSettings(bundle=bundle, workspace=workspace, api_key=KEY, max_request_bytes=1_000_000, max_batch_images=8)
    )


def stored(ws: Workspace) -> tuple[list[tuple[int, str | None, int]], int, int]:
    """What a failed request must not change: every image's label and version, the feedback, the actions."""
    images = [(r.id, r.label, r.label_version) for r in ws.catalog.images(include_excluded=True, readable=None)]
    return images, len(FeedbackStore(ws).items()), len(ws.catalog.actions())


def test_model_server_survives_fuzzing(bundle: Path, tmp_path: Path) -> None:
    app = server(bundle, tmp_path / "sws")
    try:
        report = fuzz_app(
            "server", app, app.openapi(), base_url="http://testserver", headers={"X-API-Key": KEY}, max_examples=CASES
        )
    finally:
        asgi.shutdown_lifespans()
    assert report.operations == 8 and report.cases >= 40
    assert report.findings() == []


def test_label_app_survives_fuzzing(label_ws: Workspace) -> None:
    app = create_label_app(LabelSettings(workspace=label_ws.root, token=TOKEN, annotator="fuzz"))
    headers = {"X-Picsift-Token": TOKEN, "X-Picsift-Client": "fuzz"}
    try:
        # A valid training request starts a real training: it gets invalid data only (the bad requests cover it).
        report = fuzz_app(
            "label",
            app,
            app.openapi(),
            base_url="http://localhost",
            headers=headers,
            max_examples=LABEL_CASES,
            negative_only=frozenset({"POST /api/jobs/train"}),
        )
    finally:
        asgi.shutdown_lifespans()
    assert report.operations == 29 and report.cases >= 150
    assert report.findings() == []


def test_model_server_answers_bad_requests_with_a_clear_4xx(bundle: Path, png: bytes, tmp_path: Path) -> None:
    with TestClient(server(bundle, tmp_path / "sws"), base_url="http://localhost") as c:
        assert send_bad_requests(c, server_bad_requests(png, KEY)) == []
        assert c.get("/readyz", headers={"X-API-Key": KEY}).json()["status"] == "ready"  # still serving
    if (tmp_path / "sws").exists():  # nothing of the refused feedback was stored
        ws = Workspace.open(tmp_path / "sws")
        try:
            assert FeedbackStore(ws).items() == []
        finally:
            ws.close()


def test_label_app_answers_bad_requests_with_a_clear_4xx_and_loses_nothing(label_ws: Workspace) -> None:
    before = stored(label_ws)
    app = create_label_app(LabelSettings(workspace=label_ws.root, token=TOKEN, annotator="fuzz"))
    with TestClient(app, base_url="http://localhost") as c:
        assert send_bad_requests(c, label_bad_requests(TOKEN)) == []
    assert stored(label_ws) == before


def test_ids_beyond_sqlite_integers_are_not_found_rather_than_a_crash(label_ws: Workspace) -> None:
    huge = 2**64
    for lookup in (
        lambda: label_ws.catalog.image(huge),
        lambda: label_ws.catalog.undo(huge),
        lambda: FeedbackStore(label_ws).accept([huge]),
    ):
        with pytest.raises(NotFoundError, match="beyond the catalog's 64-bit integer range"):
            lookup()


def test_unclear_errors_are_told_apart() -> None:
    assert unclear_error(404, "application/json", b'{"error": "not_found", "detail": "no image with id 9"}') is None
    assert unclear_error(200, "text/plain", b"ok") is None
    assert "readable" in (unclear_error(422, "application/json", b'{"error": "x", "detail": [{"loc": []}]}') or "")
    assert "error" in (unclear_error(404, "application/json", b'{"detail": "Not Found"}') or "")
    assert "not JSON" in (unclear_error(400, "text/plain", b"Bad Request") or "")
