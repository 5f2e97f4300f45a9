"""The labelling app's JSON API through FastAPI's test client, on a real workspace of digit PNGs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from picsift.label_app.settings import needs_token
from support.label import app_client, make_workspace, truth

client = app_client


def test_label_conflict_and_undo_are_recorded_with_annotator(ws) -> None:
    with client(ws) as c:
        page = c.get("/api/images", params={"view": "unlabeled"}).json()
        assert page["total"] == 15
        item = page["items"][0]
        iid, v0 = item["id"], item["version"]
        r = c.post("/api/labels", json={"image_ids": [iid], "label": "1", "expected_versions": {str(iid): v0}})
        assert r.status_code == 200
        v1 = r.json()["applied"][0]["version"]
        # Bob still holds the old version: his write must lose with a clear message, not overwrite.
        r = c.post(
            "/api/labels",
            json={"image_ids": [iid], "label": "2", "expected_versions": {str(iid): v0}},
            headers={"X-Picsift-User": "bob"},
        )
        assert r.status_code == 409
        assert "someone else" in r.json()["detail"] and r.json()["applied"] == []
        assert ws.catalog.image(iid).label == "1"
        r = c.post(f"/api/images/{iid}/undo", json={"expected_version": v1}, headers={"X-Picsift-User": "bob"})
        assert r.status_code == 200 and r.json()["label"] is None
        history = ws.catalog.label_history(iid)
        assert [(h["label"], h["annotator"]) for h in history] == [("1", "alice"), (None, "bob")]
        assert all(h["created_at"] for h in history)
        # Undo based on a stale version is a conflict too.
        assert c.post(f"/api/images/{iid}/undo", json={"expected_version": v1}).status_code == 409


def test_undo_answers_the_label_it_restored_when_another_write_follows_at_once(ws, monkeypatch) -> None:
    from picsift.store import Catalog

    real_undo = Catalog.undo_label

    def undo_then_bob_writes(self, image_id, **kw):  # bob's write lands right after the undo's
        out = real_undo(self, image_id, **kw)
        ws.catalog.set_label(image_id, "2", annotator="bob", expected_version=ws.catalog.image(image_id).label_version)
        return out

    with client(ws) as c:
        iid = c.get("/api/images", params={"view": "unlabeled"}).json()["items"][0]["id"]
        v1 = c.post("/api/labels", json={"image_ids": [iid], "label": "1", "expected_versions": {str(iid): 0}})
        assert v1.status_code == 200 and v1.json()["applied"][0]["version"] == 1
        monkeypatch.setattr(Catalog, "undo_label", undo_then_bob_writes)
        r = c.post(f"/api/images/{iid}/undo", json={"expected_version": 1})
    # The answer describes the undo (version 2: no label), not bob's later version 3.
    assert r.status_code == 200 and r.json() == {"image_id": iid, "label": None, "version": 2}
    assert [(h["label"], h["annotator"]) for h in ws.catalog.label_history(iid)] == [
        ("1", "alice"),
        (None, "alice"),
        ("2", "bob"),
    ]


def test_repeated_undos_step_back_through_the_history(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, labelled_per_class=0)
    with client(ws) as c:
        assert c.get("/api/images/1").json()["label"] is None
        for label in ("airplane", "Airplane"):
            assert c.post("/api/labels", json={"image_ids": [1], "label": label}).status_code == 200
        first = c.post("/api/images/1/undo", json={"expected_version": 2})
        assert first.status_code == 200 and first.json() == {"image_id": 1, "label": "airplane", "version": 3}
        second = c.post("/api/images/1/undo", json={"expected_version": 3})
        assert second.status_code == 200 and second.json() == {"image_id": 1, "label": None, "version": 4}
        third = c.post("/api/images/1/undo", json={"expected_version": 4})
        assert third.status_code == 400 and "nothing left to undo" in third.json()["detail"]
        assert c.post("/api/images/1/undo", json={"expected_version": 3}).status_code == 409  # stale stays 409
        # A new change after undos is undone on its own, then the undos stay stepped back: back to None.
        assert c.post("/api/labels", json={"image_ids": [1], "label": "1"}).status_code == 200
        assert c.post("/api/images/1/undo", json={}).json()["label"] is None
        assert c.post("/api/images/1/undo", json={}).status_code == 400
    assert [h["label"] for h in ws.catalog.label_history(1)] == ["airplane", "Airplane", "airplane", None, "1", None]
    assert ws.catalog.image(1).label is None
    ws.close()


def test_undoing_an_accepted_proposal_restores_the_label_and_the_proposal(ws) -> None:
    image, other = [r.id for r in ws.catalog.images(labeled=False)][:2]
    ws.catalog.propose_labels([(image, "0", 0.9), (other, "1", 0.8)], origin="model")
    with client(ws) as c:
        proposal = next(p["id"] for p in c.get("/api/proposals").json() if p["image_id"] == image)
        assert c.post("/api/proposals/accept", json={"ids": [proposal]}).json()["accepted"] == [proposal]
        assert [p["image_id"] for p in c.get("/api/proposals").json()] == [other]
        undone = c.post(f"/api/images/{image}/undo", json={}).json()
        assert undone["label"] is None and ws.catalog.image(image).label is None
        pending = {p["id"]: (p["image_id"], p["label"]) for p in c.get("/api/proposals").json()}
        assert pending[proposal] == (image, "0") and len(pending) == 2
        # The reopened proposal can be accepted again, and undone again.
        assert c.post("/api/proposals/accept", json={"ids": [proposal]}).json()["accepted"] == [proposal]
        assert c.post(f"/api/images/{image}/undo", json={}).json()["label"] is None
        assert c.post(f"/api/images/{image}/undo", json={}).status_code == 400
    statuses = [(h["origin"], h["status"]) for h in ws.catalog.label_history(image)]
    assert statuses.count(("model", "proposed")) == 1


def test_an_imported_label_is_the_starting_point_of_undo(ws) -> None:
    assert [h["origin"] for h in ws.catalog.label_history(1)] == ["import"]  # labelled "0" by its import
    ws.catalog.set_label(1, "1")
    with client(ws) as c:
        assert c.post("/api/images/1/undo", json={}).json()["label"] == "0"
        again = c.post("/api/images/1/undo", json={})
    assert again.status_code == 400 and "nothing left to undo" in again.json()["detail"]
    assert ws.catalog.image(1).label == "0"


def test_bulk_label_filters_and_image_detail(ws) -> None:
    (ws.root / "findings.json").write_text(
        json.dumps([{"kind": "near_duplicate", "image_ids": [1, 2], "score": 0.98, "explanation": "same digit"}])
    )
    with client(ws) as c:
        ids = [x["id"] for x in c.get("/api/images", params={"view": "unlabeled", "limit": 4}).json()["items"]]
        r = c.post("/api/labels", json={"image_ids": ids, "label": "2"})
        assert r.status_code == 200 and len(r.json()["applied"]) == 4
        listed = c.get("/api/images", params={"label": "2"}).json()
        assert {x["id"] for x in listed["items"]} >= set(ids)
        assert c.get("/api/images", params={"view": "unlabeled"}).json()["total"] == 11
        detail = c.get("/api/images/1").json()
        assert detail["width"] == 16 and detail["format"] == "PNG" and detail["sha256"]
        assert detail["findings"][0]["kind"] == "near_duplicate"
        assert c.get("/api/images/9999").status_code == 404
        thumb = c.get("/api/images/1/thumb")
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        assert c.get("/api/summary").json()["findings"] == 1
        assert c.get("/api/images", params={"view": "bogus"}).status_code == 400


def test_findings_file_absent_or_malformed_is_tolerated(ws) -> None:
    with client(ws) as c:
        assert c.get("/api/images/1").json()["findings"] == []
        (ws.root / "findings.json").write_text("{not json")
        assert c.get("/api/images/1").json()["findings"] == []


def test_classes_create_rename_merge(ws) -> None:
    with client(ws) as c:
        names = [x["name"] for x in c.post("/api/classes", json={"name": "seven"}).json()]
        assert names == ["0", "1", "2", "seven"]
        r = c.post("/api/classes/rename", json={"old": "0", "new": "zero"})
        assert r.json()["changed"] == 3
        assert c.post("/api/classes/rename", json={"old": "1", "new": "zero"}).status_code == 400
        r = c.post("/api/classes/merge", json={"sources": ["1", "2"], "target": "zero"})
        assert r.json()["changed"] == 6
        assert {x["name"]: x["count"] for x in r.json()["classes"]} == {"seven": 0, "zero": 9}
    labels = {r.label for r in ws.catalog.images(labeled=True)}
    assert labels == {"zero"}
    events = ws.catalog.label_history(1)
    assert events[-1]["label"] == "zero" and events[-1]["annotator"] == "alice"


def test_proposals_accept_reject_and_conflict(ws) -> None:
    unl = [r.id for r in ws.catalog.images(labeled=False)]
    ws.catalog.propose_labels([(unl[0], "0", 0.97), (unl[1], "1", 0.95), (unl[2], "2", 0.91)], origin="model")
    with client(ws) as c:
        proposed = c.get("/api/images", params={"view": "proposed"}).json()
        assert proposed["total"] == 3 and proposed["items"][0]["proposal"]["origin"] == "model"
        props = {p["image_id"]: p["id"] for p in c.get("/api/proposals").json()}
        # Someone labels the third image by hand first: accepting the proposal must not overwrite it.
        ws.catalog.set_label(unl[2], "1", annotator="carol")
        r = c.post("/api/proposals/accept", json={"ids": [props[unl[0]], props[unl[2]]]})
        assert r.status_code == 409 and r.json()["accepted"] == [props[unl[0]]]
        assert c.post("/api/proposals/reject", json={"ids": [props[unl[1]]]}).json()["rejected"] == [props[unl[1]]]
    assert ws.catalog.image(unl[0]).label == "0"
    assert ws.catalog.image(unl[1]).label is None
    assert ws.catalog.image(unl[2]).label == "1"
    last = ws.catalog.label_history(unl[0])[-1]
    assert (last["origin"], last["annotator"], last["status"]) == ("model", "alice", "accepted")
    assert last["confidence"] == pytest.approx(0.97)


def test_token_required_beyond_localhost(ws) -> None:
    assert not needs_token("127.0.0.1") and needs_token("0.0.0.0")
    with client(ws, token="s3cret") as c:
        assert c.get("/api/summary").status_code == 401
        assert c.get("/").status_code == 401
        assert c.get("/api/images/1/thumb").status_code == 401
        assert c.get("/api/summary", headers={"X-Picsift-Token": "wrong"}).status_code == 401
        assert c.get("/api/summary", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # Opening the printed URL sets a cookie, after which the browser needs nothing else.
        assert c.get("/", params={"token": "s3cret"}).status_code == 200
        assert c.get("/api/summary").status_code == 200


def test_train_from_app_then_queue_sort_and_autolabel(ws) -> None:
    truth_of = truth(ws)
    with client(ws) as c:
        assert c.get("/api/queue", params={"n": 4}).json()["run"] is None  # diversity only before a run
        job = c.post("/api/jobs/train", json={"epochs": 2}).json()
        assert job["status"] == "running" and job["progress"]["total_epochs"] == 2
        deadline = time.time() + 120
        while job["status"] == "running" and time.time() < deadline:
            time.sleep(0.5)
            job = c.get(f"/api/jobs/{job['id']}").json()
        assert job["status"] == "done", job
        assert job["progress"]["epochs_done"] == 2
        q = c.get("/api/queue", params={"n": 5}).json()
        assert q["run"] == job["result"]["run_id"] and len(q["items"]) == 5
        assert all(truth_of[i["image_id"]] and i["predicted"] in ("0", "1", "2") for i in q["items"])
        scores = [i["score"] for i in q["items"]]
        assert scores == sorted(scores, reverse=True)
        by_unc = c.get("/api/images", params={"view": "unlabeled", "sort": "uncertainty"}).json()["items"]
        conf = [x["prediction"]["confidence"] for x in by_unc]
        assert conf == sorted(conf)
        auto = c.post("/api/jobs/autolabel", json={"method": "model", "threshold": 0.0}).json()
        while auto["status"] == "running":
            time.sleep(0.2)
            auto = c.get(f"/api/jobs/{auto['id']}").json()
        assert auto["status"] == "done" and auto["result"]["proposed"] == 15
        assert c.get("/api/summary").json()["proposals"] == 15
    assert len(ws.catalog.images(labeled=True)) == 9  # proposals only: no label was written


def test_label_command_beyond_localhost_prints_a_token_and_enforces_it(ws) -> None:
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "picsift"
    cmd = [str(exe), "label", "-w", str(ws.root), "--host", "0.0.0.0", "--port", str(port), "--no-browser"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        token = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("access token:"):
                token = line.split(":", 1)[1].strip()
                break
        assert token, "no token printed"
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"{base}/api/summary", timeout=30)
                break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert r.status_code == 401
        ok = httpx.get(f"{base}/api/summary", headers={"X-Picsift-Token": token}, timeout=60)
        assert ok.status_code == 200 and ok.json()["token_required"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_static_ui_serves_its_javascript_modules_and_nothing_outside(ws) -> None:
    import os
    import re
    from urllib.parse import quote

    from picsift.label_app.routers.static import STATIC, static_file

    secret = ws.root / "secret.js"  # a file of a served type, outside the static folder
    secret.write_text("secret")
    outside = [quote(str(secret), safe=""), quote(os.path.relpath(secret, STATIC), safe="")]
    with client(ws) as c:
        index = c.get("/").text
        assert '<script type="module" src="static/js/main.js">' in index
        # Every module main.js reaches through its imports is served as JavaScript.
        todo, seen = ["main.js"], set()
        while todo:
            name = todo.pop()
            seen.add(name)
            r = c.get(f"/static/js/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
            todo += [m for m in re.findall(r'from "\./([\w-]+\.js)"', r.text) if m not in seen]
        assert {"state.js", "api.js", "grid.js", "viewer.js", "keyboard.js", "classes.js", "feedback.js"} <= seen
        assert c.get("/static/style.css").headers["content-type"].startswith("text/css")
        for bad in [*outside, "..%2F..%2Fweb%2Fapp.py", "%2Fetc%2Fpasswd", "nope.js", "js"]:
            r = c.get(f"/static/{bad}")
            assert r.status_code == 404 and r.json()["detail"].startswith("no static file"), bad
    assert static_file("js/../style.css") is not None and static_file("../web/app.py") is None
