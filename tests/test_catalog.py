"""The workspace catalog: rows, labels with history and conflicts, splits, exclusions, summaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from picsift.errors import WorkspaceError
from picsift.store import LabelConflictError, Workspace
from picsift.store.schema import Image, Meta


def _ws(tmp_path: Path, catalog_url: str | None) -> Workspace:
    return Workspace.open(tmp_path / "ws", create=True, db_url=catalog_url)


def _add(ws: Workspace, n: int, **kw: object) -> list[int]:
    ws.catalog.add_images(
        Image(sha256=f"{i:064x}", path=f"/data/{kw.get('prefix', 'img')}{i}.png", source="/data", width=8, height=8,
              **{k: v for k, v in kw.items() if k != "prefix"})
        for i in range(n)
    )  # fmt: skip
    return [r.id for r in ws.catalog.images(readable=None, include_excluded=True)]


def test_workspace_open_and_create(tmp_path: Path, catalog_url: str | None) -> None:
    with pytest.raises(WorkspaceError, match="no picsift workspace"):
        Workspace.open(tmp_path / "absent")
    ws = _ws(tmp_path, catalog_url)
    assert (ws.root / "runs").is_dir() and (ws.root / "cache").is_dir()
    assert ws.catalog.count() == 0
    assert (ws.root / "catalog.sqlite").is_file() == (catalog_url is None)
    assert (ws.root / "workspace.json").is_file() == (catalog_url is not None)
    assert ws.catalog.backend == ("sqlite" if catalog_url is None else "postgresql")
    ws.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace.open(tmp_path / "file", create=True)


def test_newer_schema_refused(tmp_path: Path, catalog_url: str | None) -> None:
    ws = _ws(tmp_path, catalog_url)
    with ws.catalog.session() as s:
        meta = s.get(Meta, "schema_version")
        assert meta is not None
        meta.value = "999"
    ws.close()
    with pytest.raises(WorkspaceError, match="upgrade picsift"):
        _ = Workspace.open(tmp_path / "ws").catalog


def test_non_utf8_paths_round_trip(tmp_path: Path, catalog_url: str | None) -> None:
    ws = _ws(tmp_path, catalog_url)
    odd = os.fsdecode(b"/data/caf\xe9 \xff.png")
    marker_like = "fsbytes:not-hex"
    ws.catalog.add_images([Image(sha256="a", path=odd, source=odd), Image(sha256="b", path=marker_like)])
    rows = ws.catalog.images()
    assert [r.path for r in rows] == [odd, marker_like]
    assert rows[0].source == odd
    with ws.catalog.engine.connect() as c:  # stored as valid text
        stored = [p for (p,) in c.execute(text("SELECT path FROM images ORDER BY id"))]
    assert all(p.startswith("fsbytes:") for p in stored)
    with pytest.raises(IntegrityError, match="(?i)unique"):
        ws.catalog.add_images([Image(sha256="c", path=odd)])
    ws.close()


def test_image_filters(tmp_path: Path, catalog_url: str | None) -> None:
    ws = _ws(tmp_path, catalog_url)
    ids = _add(ws, 4)
    ws.catalog.add_images([Image(sha256="bad", path="/data/bad.png", readable=False, error="truncated image")])
    ws.catalog.add_images([Image(sha256=f"{0:064x}", path="/data/dup.png", duplicate_of=ids[0])])
    ws.catalog.set_label(ids[0], "cat")
    ws.catalog.set_label(ids[1], "dog")
    ws.catalog.set_splits({ids[0]: "train", ids[1]: "val"}, origin="auto")
    c = ws.catalog
    assert len(c.images()) == 5  # readable only, by default
    assert len(c.images(readable=None)) == 6
    assert [r.error for r in c.images(readable=False)] == ["truncated image"]
    assert [r.id for r in c.images(split="train")] == [ids[0]]
    assert c.images(split="val")[0].split_origin == "auto"
    assert len(c.images(labeled=True)) == 2 and len(c.images(labeled=False)) == 3
    assert len(c.images(include_duplicates=False)) == 4
    assert [r.id for r in c.images(ids=[ids[2], ids[3]])] == ids[2:4]
    assert c.training_images("train")[0].label == "cat"
    assert c.image(ids[1]).label == "dog"
    with pytest.raises(WorkspaceError, match="no image with id"):
        c.image(10_000)
    ws.close()


def test_labels_history_versions_and_conflicts(tmp_path: Path, catalog_url: str | None) -> None:
    ws = _ws(tmp_path, catalog_url)
    (image_id,) = _add(ws, 1)
    c = ws.catalog
    assert c.set_label(image_id, "cat", origin="import", annotator="ann") == 1
    assert c.set_label(image_id, "dog", expected_version=1) == 2
    with pytest.raises(LabelConflictError, match="relabelled to 'dog'"):
        c.set_label(image_id, "bird", expected_version=1)
    history = c.label_history(image_id)
    assert [(h["label"], h["status"]) for h in history] == [("cat", "superseded"), ("dog", "accepted")]
    assert history[0]["origin"] == "import" and history[0]["annotator"] == "ann"
    assert c.image(image_id).label == "dog" and c.image(image_id).label_version == 2
    assert c.classes() == ["cat", "dog"]  # declared classes stay after relabelling
    with pytest.raises(WorkspaceError):
        c.set_label(99_999, "x")
    ws.close()


def test_exclusions_are_undoable(tmp_path: Path, catalog_url: str | None) -> None:
    ws = _ws(tmp_path, catalog_url)
    ids = _add(ws, 3)
    c = ws.catalog
    first = c.exclude({ids[0]: "blurry", ids[1]: "duplicate"}, kind="curate", reason="quality pass")
    second = c.exclude({ids[1]: "outlier"}, kind="curate")
    assert {r.id for r in c.images()} == {ids[2]}
    assert len(c.exclusions()) == 3
    assert c.undo() == second  # the latest first
    assert {r.id for r in c.images()} == {ids[2]}  # ids[1] is still excluded by the first action
    assert c.undo(first) == first
    assert {r.id for r in c.images()} == set(ids)
    assert c.exclusions() == [] and len(c.exclusions(active_only=False)) == 3
    with pytest.raises(WorkspaceError, match="nothing to undo"):
        c.undo(first)
    assert [a["kind"] for a in c.actions()] == ["curate", "curate"]
    ws.close()


def test_summary_and_catalog_hash(tmp_path: Path, catalog_url: str | None) -> None:
    ws = _ws(tmp_path, catalog_url)
    ids = _add(ws, 4)
    c = ws.catalog
    c.add_images([Image(sha256="bad", path="/data/bad.png", readable=False, error="empty file (0 bytes)")])
    c.add_images([Image(sha256=f"{1:064x}", path="/data/dup.png", duplicate_of=ids[1])])
    for i, label in zip(ids, ["a", "a", "b", None], strict=True):
        if label:
            c.set_label(i, label)
    c.set_splits({ids[0]: "train", ids[1]: "train", ids[2]: "val"})
    c.exclude({ids[3]: "x"}, kind="test")
    h1 = c.catalog_hash()
    s = c.summary()
    assert (s["images"], s["readable"], s["exact_duplicates"], s["excluded"]) == (6, 5, 1, 1)
    assert s["unreadable"] == [{"path": "/data/bad.png", "reason": "empty file (0 bytes)"}]
    assert s["classes"] == ["a", "b"]
    assert s["splits"] == {"train": {"a": 2}, "val": {"b": 1}, "none": {"(unlabeled)": 1}}
    assert (s["labeled"], s["unlabeled"]) == (3, 1)
    c.set_label(ids[2], "a")
    assert c.catalog_hash() != h1
    c.record_run("r1", "/runs/r1", "fastcnn", c.catalog_hash(), {"acc": 0.5})
    ws.close()
