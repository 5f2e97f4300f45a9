"""Reviewing server feedback and excluding images in the labelling app, through FastAPI's test client."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.store.feedback_store import FeedbackStore, accepted_feedback_rows
from support.label import app_client

client = app_client


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_feedback_list_accept_reject_in_bulk(ws) -> None:
    store = FeedbackStore(ws)
    known = Path(ws.catalog.image(1).path).read_bytes()  # a correction of an image already catalogued
    a = store.add("2", image=png(1), predicted_label="1", confidence=0.8, comment="that is a two")
    b = store.add("0", image=known, predicted_label="0", comment="relabel")
    c = store.add("1", image=png(2), predicted_label="2")
    d = store.add("1", comment="no image attached")
    with client(ws) as http:
        listed = http.get("/api/feedback").json()
        assert [i["id"] for i in listed["items"]] == [a.id, b.id, c.id, d.id]
        first = listed["items"][0]
        assert (first["label"], first["predicted_label"], first["comment"]) == ("2", "1", "that is a two")
        thumb = http.get(f"/api/feedback/{a.id}/image")
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        assert http.get(f"/api/feedback/{d.id}/image").status_code == 404
        assert http.get("/api/feedback/999/image").status_code == 404
        assert http.get("/api/summary").json()["feedback"] == 4

        # Bulk accept: the one without an image is refused with a reason, the others go through.
        r = http.post("/api/feedback/accept", json={"ids": [a.id, b.id, d.id]}, headers={"X-Picsift-User": "bob"})
        assert r.status_code == 409 and "carries no image" in r.json()["detail"]
        accepted = {x["id"]: x for x in r.json()["accepted"]}
        assert set(accepted) == {a.id, b.id} and all(x["reviewer"] == "bob" for x in accepted.values())
        assert [e["id"] for e in r.json()["errors"]] == [d.id]
        r = http.post("/api/feedback/reject", json={"ids": [c.id, d.id]})
        assert r.status_code == 200 and [x["status"] for x in r.json()["rejected"]] == ["rejected"] * 2
        assert http.get("/api/feedback").json()["items"] == []
        assert len(http.get("/api/feedback", params={"status": "all"}).json()["items"]) == 4
        again = http.post("/api/feedback/accept", json={"ids": [c.id]})
        assert again.status_code == 409 and "already rejected" in again.json()["detail"]
        assert http.get("/api/feedback", params={"status": "bogus"}).status_code == 400

    # Accepting a new image imports it labelled (split "feedback"); a known image is relabelled in place.
    new_id = accepted[a.id]["image_id"]
    assert ws.catalog.image(new_id).label == "2" and ws.catalog.image(new_id).split == "feedback"
    assert [r.id for r in accepted_feedback_rows(ws)] == [new_id]
    assert accepted[b.id]["image_id"] == 1 and ws.catalog.image(1).label == "0"
    last = ws.catalog.label_history(new_id)[-1]
    assert (last["origin"], last["annotator"]) == ("feedback", "bob")
    assert store.get(c.id).status == "rejected" and store.get(c.id).image_id is None


def test_feedback_routes_need_the_token(ws) -> None:
    item = FeedbackStore(ws).add("1", image=png(3))
    with client(ws, token="s3cret") as http:
        assert http.get("/api/feedback").status_code == 401
        assert http.get(f"/api/feedback/{item.id}/image").status_code == 401
        assert http.post("/api/feedback/accept", json={"ids": [item.id]}).status_code == 401
        assert FeedbackStore(ws).get(item.id).status == "pending"
        ok = http.post("/api/feedback/accept", json={"ids": [item.id]}, headers={"X-Picsift-Token": "s3cret"})
        assert ok.status_code == 200
    assert FeedbackStore(ws).get(item.id).status == "accepted"


def test_exclude_include_and_undo_are_reversible_actions(ws) -> None:
    with client(ws) as http:
        r = http.post("/api/exclusions", json={"image_ids": [4, 5], "reason": "blurry"})
        assert r.status_code == 200
        action = r.json()["action_id"]
        assert ws.catalog.image(4).excluded and ws.catalog.image(5).excluded
        recorded = [a for a in ws.catalog.actions() if a["id"] == action][0]
        assert (recorded["kind"], recorded["actor"], recorded["reason"]) == ("manual", "alice", "blurry")
        assert {x["id"] for x in http.get("/api/images", params={"view": "excluded"}).json()["items"]} == {4, 5}
        assert 4 not in {x["id"] for x in http.get("/api/images", params={"view": "unlabeled"}).json()["items"]}
        assert http.get("/api/summary").json()["excluded"] == 2

        # Including one of the two would silently bring back the other: refused, nothing changes.
        r = http.post("/api/exclusions/include", json={"image_ids": [4]})
        assert r.status_code == 409 and f"action {action}" in r.json()["detail"]
        assert ws.catalog.image(4).excluded
        r = http.post("/api/exclusions/include", json={"image_ids": [4, 5]})
        assert r.status_code == 200 and r.json() == {"undone": [action], "included": [4, 5], "conflicts": []}
        assert not ws.catalog.image(4).excluded and not ws.catalog.image(5).excluded

        # The single-image exclude, then the app's undo of that action.
        single = http.post("/api/exclusions", json={"image_ids": [6]}).json()["action_id"]
        assert ws.catalog.exclusions()[0]["reason"] == "excluded in the labelling app"
        r = http.post("/api/exclusions/undo", json={"action_id": single})
        assert r.status_code == 200 and r.json()["images"] == [6] and not ws.catalog.image(6).excluded
        assert http.post("/api/exclusions/undo", json={"action_id": single}).status_code == 400  # already undone
        assert http.post("/api/exclusions", json={"image_ids": [9999]}).status_code == 404
        assert http.post("/api/exclusions", json={"image_ids": []}).status_code == 400
    assert ws.catalog.exclusions() == []
    assert [a["undone_at"] is not None for a in ws.catalog.actions()] == [True, True]


def test_feedback_that_creates_a_class_or_relabels_asks_first_and_undoes(ws) -> None:
    """An unknown class "wasps" suggested for a catalogued, labelled image: the list says so, accepting needs
    "confirm", and undo restores the label, the pending feedback and the class list."""
    store = FeedbackStore(ws)
    ws.catalog.set_splits({2: "val"})
    known = Path(ws.catalog.image(2).path).read_bytes()  # image 2 is labelled "0"
    wasps = store.add("wasps", image=known, predicted_label="0", confidence=0.9)
    fresh = store.add("wasps", image=png(7), predicted_label="wasps")
    with client(ws) as http:
        plans = {i["id"]: i["plan"] for i in http.get("/api/feedback").json()["items"]}
        assert plans[wasps.id]["new_class"] and plans[wasps.id]["agrees_with_model"] is False
        assert plans[wasps.id]["catalog_image"] == {"id": 2, "split": "val", "label": "0"}
        assert "relabels image 2 (split val, labelled '0')" in plans[wasps.id]["confirm"]
        assert plans[fresh.id]["catalog_image"] is None and plans[fresh.id]["agrees_with_model"] is True

        r = http.post("/api/feedback/accept", json={"ids": [wasps.id]})
        assert r.status_code == 409 and r.json()["errors"][0]["needs_confirmation"] is True
        assert "creates the new class 'wasps'" in r.json()["detail"]
        assert ws.catalog.image(2).label == "0" and "wasps" not in ws.catalog.classes()

        r = http.post("/api/feedback/accept", json={"ids": [wasps.id], "confirm": True})
        assert r.status_code == 200 and ws.catalog.image(2).label == "wasps"
        version = r.json()["accepted"][0]["version"]
        undone = http.post(f"/api/feedback/{wasps.id}/undo", json={"expected_version": version}).json()
        assert (undone["image_id"], undone["label"], undone["removed_image"], undone["removed_class"]) == (
            2,
            "0",
            False,
            True,
        )
        assert ws.catalog.image(2).label == "0" and "wasps" not in ws.catalog.classes()
        assert store.get(wasps.id).status == "pending" and store.get(wasps.id).image_id is None
        assert ws.catalog.label_history(2)[-1]["origin"] == "undo"

        # A new image imported by an accept leaves the catalog again on undo.
        n_images = ws.catalog.count()
        r = http.post("/api/feedback/accept", json={"ids": [fresh.id], "confirm": True})
        new_id = r.json()["accepted"][0]["image_id"]
        assert ws.catalog.count() == n_images + 1
        stale = http.post(f"/api/feedback/{fresh.id}/undo", json={"expected_version": 0})
        assert stale.status_code == 409 and ws.catalog.image(new_id).label == "wasps"
        undone = http.post(f"/api/feedback/{fresh.id}/undo", json={}).json()
        assert undone["removed_image"] and undone["removed_class"] and ws.catalog.count() == n_images
        assert http.post(f"/api/feedback/{fresh.id}/undo", json={}).status_code == 400  # pending: nothing to undo


def test_queue_names_the_run_and_clusters_read_picsift_cluster(ws) -> None:
    """With every image labelled the queue is empty but still names the run; the Clusters view reads what
    `picsift cluster` writes."""
    import json

    from picsift.cluster import run as cluster_run

    run_dir = ws.runs_dir / "20260102-000000-fastcnn"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "model.json").write_text(json.dumps({"classes": ["0", "1", "2"]}))
    for row in ws.catalog.images(labeled=False):
        ws.catalog.set_label(row.id, "1")
    cluster_run(ws, features="color-hist", k=3)
    with client(ws) as http:
        batch = http.get("/api/queue").json()
        assert batch["items"] == [] and batch["run"] == "20260102-000000-fastcnn"
        data = http.get("/api/clusters").json()
        assert data["source"] == "picsift cluster" and len(data["clusters"]) == 3
        assert sum(c["size"] for c in data["clusters"]) == 24 and all(
            c["unlabeled_ids"] == [] for c in data["clusters"]
        )
        summary = http.get("/api/summary").json()
        assert summary["latest_run"] == "20260102-000000-fastcnn" and summary["runs"][0]["default"] is True


def test_undoing_an_accept_removes_its_image_in_one_transaction_so_a_later_writer_is_told(ws) -> None:
    """The undo writes the label and removes the image the accept imported in one transaction, so no label can
    slip in between and be deleted with the image; bob, writing after it, is told the image is gone (not lost
    silently)."""
    from picsift.errors import NotFoundError
    from picsift.label.edits import review_feedback, undo_feedback_accept

    store = FeedbackStore(ws)
    fresh = store.add("1", image=png(11), predicted_label="1")
    accepted = review_feedback(store, [fresh.id], reviewer="dana", accept=True)
    image_id = accepted.done[0]["image_id"]
    version = accepted.done[0]["version"]
    out = undo_feedback_accept(store, fresh.id, annotator="dana", expected_version=version)
    assert (out["label"], out["version"], out["removed_image"]) == (None, version + 1, True)
    with pytest.raises(NotFoundError):
        ws.catalog.set_label(image_id, "2", annotator="bob", expected_version=version + 1)
