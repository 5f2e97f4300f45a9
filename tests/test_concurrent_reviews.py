"""Reviews and undos racing on one catalog, on SQLite and on PostgreSQL: every state change is one conditional
write, so of two writers changing the same row at the same moment exactly one succeeds and the other is told,
and flags derived from other rows (an image's `excluded`) stay true to them."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from picsift.errors import ConflictError, WorkspaceError
from picsift.label.edits import undo_feedback_accept
from picsift.store import Workspace
from picsift.store.feedback_store import FeedbackConflictError, FeedbackStore
from support.label import app_client, make_workspace

ROUNDS = 4


def png_bytes(seed: int) -> bytes:
    """A small PNG whose bytes differ for each seed."""
    buf = io.BytesIO()
    PILImage.fromarray(np.full((8, 8, 3), seed * 11 % 256, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def race(root: Path, db_url: str | None, n: int, work: Callable[[Workspace, int], Any]) -> list[Any]:
    """Run work(ws, i) in n threads at once, each with a workspace (a connection pool) of its own, as n app
    processes would be; returns each thread's result or the exception it raised."""
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def one(i: int) -> None:
        ws = Workspace.open(root, db_url=db_url)
        try:
            start.wait()
            results[i] = work(ws, i)
        except Exception as e:  # noqa: BLE001 - the result under test
            results[i] = e
        finally:
            ws.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_two_reviewers_accepting_one_feedback_item_apply_it_once(tmp_path: Path, catalog_url: str | None) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=0, db_url=catalog_url)
    store = FeedbackStore(ws)
    items = [store.add("bird", image=png_bytes(k)) for k in range(ROUNDS)]
    for item in items:
        outcome = race(
            ws.root, catalog_url, 2, lambda w, i, fid=item.id: FeedbackStore(w).accept([fid], reviewer=f"rev{i}")
        )
        won = [r for r in outcome if isinstance(r, list)]
        lost = [r for r in outcome if isinstance(r, Exception)]
        assert len(won) == 1 and len(lost) == 1, outcome
        assert isinstance(lost[0], FeedbackConflictError)
        assert f"feedback {item.id} was already accepted by {won[0][0].reviewer}" in str(lost[0])
        done = store.get(item.id)
        assert (done.status, done.reviewer) == ("accepted", won[0][0].reviewer)
        assert done.image_id is not None
        history = ws.catalog.label_history(done.image_id)
        assert [(h["origin"], h["status"], h["label"]) for h in history] == [("feedback", "accepted", "bird")]
    assert len(ws.catalog.images(split="feedback")) == ROUNDS
    ws.close()


def test_two_reviewers_accepting_at_once_in_the_app_one_gets_a_409(tmp_path: Path, catalog_url: str | None) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=0, db_url=catalog_url)
    item = FeedbackStore(ws).add("bird", image=png_bytes(1))
    ws.close()

    def review(w: Workspace, i: int) -> Any:
        with app_client(w) as http:
            body = {"ids": [item.id], "confirm": True}
            return http.post("/api/feedback/accept", json=body, headers={"X-Picsift-User": f"rev{i}"})

    responses = race(tmp_path / "ws", catalog_url, 2, review)
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r for r in responses if r.status_code == 200).json()["accepted"][0]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["accepted"] == [] and loser["errors"][0]["id"] == item.id
    assert f"feedback {item.id} was already accepted by {winner['reviewer']}" in loser["detail"]
    ws = Workspace.open(tmp_path / "ws", db_url=catalog_url)
    assert FeedbackStore(ws).get(item.id).status == "accepted"
    (image,) = ws.catalog.images(split="feedback")
    assert [h["origin"] for h in ws.catalog.label_history(image.id)] == ["feedback"]
    ws.close()


def test_an_exclusion_racing_an_undo_keeps_the_flag_true_to_the_exclusions(
    tmp_path: Path, catalog_url: str | None
) -> None:
    ws = make_workspace(tmp_path, per_class=ROUNDS, labelled_per_class=0, db_url=catalog_url)
    ids = [r.id for r in ws.catalog.images()][:ROUNDS]
    for image_id in ids:
        first = ws.catalog.exclude({image_id: "blurry"}, kind="manual")

        def work(w: Workspace, i: int, image_id: int = image_id, first: int = first) -> int:
            return w.catalog.undo(first) if i == 0 else w.catalog.exclude({image_id: "dark"}, kind="manual")

        assert not any(isinstance(r, Exception) for r in race(ws.root, catalog_url, 2, work))
        active = [e for e in ws.catalog.exclusions() if e["image_id"] == image_id]
        assert [e["reason"] for e in active] == ["dark"]  # the undone one is inactive, the new one active
        assert ws.catalog.image(image_id).excluded is True
    ws.close()


def test_two_undos_of_one_action_undo_it_once(tmp_path: Path, catalog_url: str | None) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=0, db_url=catalog_url)
    ids = [r.id for r in ws.catalog.images()][:2]
    for _ in range(ROUNDS):
        action = ws.catalog.exclude(dict.fromkeys(ids, "dup"), kind="manual")
        outcome = race(ws.root, catalog_url, 2, lambda w, i, a=action: w.catalog.undo(a))
        assert sorted(map(type, outcome), key=str) == sorted([int, WorkspaceError], key=str), outcome
        lost = next(r for r in outcome if isinstance(r, Exception))
        assert f"action {action} not found or already undone" in str(lost)
        assert not any(r.excluded for r in ws.catalog.images(ids=ids, include_excluded=True))
    ws.close()


def test_two_reviewers_accepting_one_proposal_apply_it_once(tmp_path: Path, catalog_url: str | None) -> None:
    ws = make_workspace(tmp_path, per_class=ROUNDS, labelled_per_class=0, db_url=catalog_url)
    ids = [r.id for r in ws.catalog.images()][:ROUNDS]
    ws.catalog.propose_labels([(i, "cat", 0.9) for i in ids])
    for proposal in ws.catalog.proposals():
        pid = proposal["id"]
        outcome = race(
            ws.root,
            catalog_url,
            2,
            lambda w, i, p=pid: w.catalog.resolve_proposals([p], accept=True, annotator=f"r{i}"),
        )
        assert sorted(next(k for k, v in o.items() if v == [pid]) for o in outcome) == ["accepted", "missing"]
        history = ws.catalog.label_history(proposal["image_id"])
        assert [(h["status"], h["label"]) for h in history if h["status"] in ("accepted", "superseded")] == [
            ("accepted", "cat")
        ]
        assert ws.catalog.image(proposal["image_id"]).label_version == 1
    ws.close()


def test_two_undos_of_one_feedback_accept_undo_it_once(tmp_path: Path, catalog_url: str | None) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=0, db_url=catalog_url)
    store = FeedbackStore(ws)
    image = ws.catalog.images()[0]
    ws.catalog.set_label(image.id, "cat")
    data = Path(image.path).read_bytes()
    for k in range(ROUNDS):
        item = store.add(f"dog{k}", image=data)
        store.accept([item.id])
        outcome = race(
            ws.root,
            catalog_url,
            2,
            lambda w, i, f=item.id: undo_feedback_accept(FeedbackStore(w), f, annotator=f"u{i}"),
        )
        lost = [r for r in outcome if isinstance(r, Exception)]
        assert len(lost) == 1, outcome
        # The loser is told: it lost the claim (a conflict), or it started after the winner had finished.
        assert isinstance(lost[0], ConflictError) or f"feedback {item.id} is pending, not accepted" in str(lost[0])
        assert store.get(item.id).status == "pending"
        row = ws.catalog.image(image.id)
        assert row.label == "cat"  # back to the label before the accept, not undone twice
        undos = [h for h in ws.catalog.label_history(image.id) if h["origin"] == "undo"]
        assert len(undos) == k + 1
        store.reject([item.id])
    ws.close()


def test_runs_started_at_the_same_moment_get_a_folder_each(tmp_path: Path) -> None:
    from picsift.runs.lifecycle import new_run_dir

    ws = make_workspace(tmp_path, per_class=1, labelled_per_class=0)
    ws.runs_dir.mkdir(parents=True, exist_ok=True)
    made = race(ws.root, None, 8, lambda w, i: [new_run_dir(w, "same-name").path for _ in range(25)])
    assert not any(isinstance(m, Exception) for m in made), made
    folders = [f for m in made for f in m]
    assert len(set(folders)) == 8 * 25 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
    ws.close()
