"""Feedback round trip: a served prediction is corrected over HTTP, reviewed with the CLI, and the
accepted image is in the next training run's train set (and only with --with-feedback)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings, create_app
from picsift.store import Workspace
from picsift.store.feedback_store import FeedbackStore, accepted_feedback_rows
from support.deploy import LiveServer, make_workspace, train_run


def _new_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_feedback_round_trip_into_next_training_set(tmp_path: Path) -> None:
    ws_root = make_workspace(tmp_path, per_class=12)
    bundle = export(train_run(ws_root, "fastcnn"), tmp_path / "bundle")
    known = next((tmp_path / "images" / "1").glob("*.png")).read_bytes()
    fresh = _new_png(1)
    with (
        LiveServer(create_app(ServerSettings(bundle=bundle, workspace=ws_root))) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        pred = c.post("/v1/predict", files={"file": ("k.png", known)}).json()
        r1 = c.post("/v1/feedback", json={"prediction_id": pred["prediction_id"], "label": "2", "comment": "wrong"})
        assert r1.status_code == 201, r1.text
        assert r1.json()["status"] == "pending" and r1.json()["known_class"] is True
        r2 = c.post("/v1/feedback", files={"file": ("f.png", fresh)}, data={"label": "2", "comment": "from field"})
        assert r2.status_code == 201, r2.text
        fresh_b64 = base64.b64encode(_new_png(2)).decode()
        r3 = c.post("/v1/feedback", json={"image": fresh_b64, "label": "brand-new-class"})
        assert r3.status_code == 201 and r3.json()["known_class"] is False

        def err(r: httpx.Response) -> tuple[int, str]:
            return r.status_code, r.json()["error"]

        assert err(c.post("/v1/feedback", json={"prediction_id": "0" * 32, "label": "2"})) == (
            404,
            "unknown_prediction",
        )
        assert err(c.post("/v1/feedback", json={"prediction_id": pred["prediction_id"]})) == (422, "missing_field")
        assert err(c.post("/v1/feedback", json={"prediction_id": pred["prediction_id"], "label": " "})) == (
            422,
            "invalid_field",
        )
        assert err(c.post("/v1/feedback", files={"file": ("x.txt", b"plain text")}, data={"label": "2"})) == (
            415,
            "not_an_image",
        )
        assert "picsift_feedback_total 3.0" in c.get("/metrics").text

    runner = CliRunner()
    app = build_app()
    listed = runner.invoke(app, ["feedback", "list", "--workspace", str(ws_root), "--json"])
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)["feedback"]
    assert [i["status"] for i in items] == ["pending"] * 3
    by_pid = items[0]
    assert by_pid["prediction_id"] == pred["prediction_id"] and by_pid["predicted_label"] == pred["label"]
    assert by_pid["model_version"] == pred["model_version"] and by_pid["comment"] == "wrong"
    assert (ws_root / items[1]["image_path"]).read_bytes() == fresh  # the image is kept, content-addressed
    assert items[1]["sha256"] in items[1]["image_path"]

    assert runner.invoke(app, ["feedback", "reject", str(items[0]["id"]), "--workspace", str(ws_root)]).exit_code == 0
    acc = runner.invoke(app, ["feedback", "accept", str(items[1]["id"]), "--workspace", str(ws_root), "--json"])
    assert acc.exit_code == 0, acc.output
    image_id = json.loads(acc.stdout)["accepted"][0]["image_id"]
    assert json.loads(acc.stdout)["accepted"][0]["new_class"] is False and "new class" not in acc.stderr
    again = runner.invoke(app, ["feedback", "accept", str(items[1]["id"]), "--workspace", str(ws_root)])
    assert again.exit_code == 2 and "already accepted" in again.output

    ws = Workspace.open(ws_root)
    rows = accepted_feedback_rows(ws)
    assert [r.id for r in rows] == [image_id] and rows[0].label == "2"
    assert ws.catalog.label_history(image_id)[-1]["origin"] == "feedback"
    assert FeedbackStore(ws).get(items[2]["id"]).status == "pending"
    ws.close()

    exported = runner.invoke(
        app,
        ["feedback", "export", "--workspace", str(ws_root), "--out", str(tmp_path / "fb"), "--status", "all", "--json"],
    )
    assert exported.exit_code == 0 and json.loads(exported.stdout)["rows"] == 3

    # A label no image had: accepted (feedback may teach a class), and said so, since it may be a typo.
    new = runner.invoke(app, ["feedback", "accept", str(items[2]["id"]), "--workspace", str(ws_root)])
    assert new.exit_code == 0, new.output
    assert "warning: 'brand-new-class' is a new class (no image had it before)" in new.stderr
    assert (tmp_path / "fb" / "2").is_dir() and (tmp_path / "fb" / "feedback.csv").read_text().count("\n") == 4

    with_fb = train_run(ws_root, "fastcnn", with_feedback=True)
    without = train_run(ws_root, "fastcnn")
    assert image_id in json.loads((with_fb / "data.json").read_text())["train_ids"]
    assert image_id not in json.loads((without / "data.json").read_text())["train_ids"]


def test_accept_without_image_is_refused(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    store = FeedbackStore(ws)
    item = store.add("cat", comment="no image")
    from picsift.errors import ConfigError

    with pytest.raises(ConfigError, match="carries no image"):
        store.accept([item.id])
    assert store.reject([item.id])[0].status == "rejected"
    ws.close()


def test_held_prediction_images_are_bounded(tmp_path: Path) -> None:
    from picsift.deploy.server.settings import ServerSettings
    from picsift.deploy.server.state import HeldPrediction, ServerState

    state = ServerState(ServerSettings(bundle=tmp_path, workspace=tmp_path, feedback_cache=3, feedback_cache_bytes=250))
    for i in range(5):
        state.hold(f"p{i}", HeldPrediction(b"x" * 100, "sha", "cat", 0.9, "v1"))
    assert [state.held(f"p{i}") is not None for i in range(5)] == [False, False, False, True, True]  # bytes bound
    state.hold("big", HeldPrediction(b"x" * 300, "sha", "cat", 0.9, "v1"))  # larger than the whole budget
    assert state.held("big") is None and state.held("p4") is not None
