"""All-or-nothing writes: several label changes in one transaction, a feedback accept in one transaction, folders
(exports) that appear only once complete, and what a killed export leaves behind cleaned up or put back."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from picsift.atomic import atomic_folder, partial_folder
from picsift.deploy.export import BUNDLE_FILE, _recover
from picsift.store import LabelChange, LabelConflictError
from picsift.store import catalog as catalog_module
from picsift.store.feedback_store import FeedbackStore
from support.images import texture
from support.label import make_workspace


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(texture(seed, size=16)).save(buf, "PNG")
    return buf.getvalue()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_set_labels_writes_all_or_nothing(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=3, labelled_per_class=0)
    try:
        cat = ws.catalog
        ids = [r.id for r in cat.images()]
        cat.set_label(ids[1], "changed meanwhile")  # version 1: the batch below still expects 0
        history = {i: cat.label_history(i) for i in ids}
        batch = [LabelChange(i, "batch", "import", "file", expected_version=0) for i in ids[:3]]
        with pytest.raises(LabelConflictError, match=f"image {ids[1]} was relabelled"):
            cat.set_labels(batch, proposals=[LabelChange(ids[4], "maybe", "import", "file")])
        assert cat.image(ids[0]).label is None and cat.image(ids[0]).label_version == 0
        assert {i: cat.label_history(i) for i in ids} == history
        assert cat.proposals() == []
        versions = cat.set_labels(batch[:1] + batch[2:], proposals=[LabelChange(ids[4], "maybe", "import", "file")])
        assert versions == [1, 1]
        assert [cat.image(i).label for i in ids[:3]] == ["batch", "changed meanwhile", "batch"]
        assert [(p["image_id"], p["label"]) for p in cat.proposals()] == [(ids[4], "maybe")]
    finally:
        ws.close()


def test_a_manual_label_withdraws_proposals_in_the_same_transaction(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=0)
    try:
        cat = ws.catalog
        image_id = cat.images()[0].id
        cat.propose_labels([(image_id, "1", 0.9)])
        cat.set_labels([LabelChange(image_id, "2", "manual", "alice")], close_proposals=True)
        assert cat.proposals() == [] and cat.image(image_id).label == "2"
    finally:
        ws.close()


def test_feedback_accept_failing_midway_leaves_it_pending_and_the_catalog_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=1)
    try:
        store = FeedbackStore(ws)
        item = store.add("3", image=png_bytes(5))
        images_before = ws.catalog.count()

        def full_disk(*_args: object, **_kwargs: object) -> int:  # the label write after the image row
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("picsift.store.feedback_store.write_label", full_disk)
        with pytest.raises(OSError):
            store.accept([item.id])
        assert store.get(item.id).status == "pending"
        assert ws.catalog.count() == images_before and "3" not in ws.catalog.classes()
        monkeypatch.undo()
        (accepted,) = store.accept([item.id])
        assert accepted.status == "accepted" and ws.catalog.image(accepted.image_id).label == "3"
        assert ws.catalog.count() == images_before + 1
    finally:
        ws.close()


def test_atomic_folder_appears_only_complete_and_clears_what_killed_writers_left(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    stale = tmp_path / f".out.partial-{dead_pid()}"
    (stale / "half").mkdir(parents=True)
    with pytest.raises(RuntimeError), atomic_folder(dest) as partial:
        (partial / "a.txt").write_text("a")
        assert not dest.exists() and partial.name.startswith(".out.partial-")
        raise RuntimeError("stop halfway")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the stale partial and this one are gone
    dest.mkdir()  # an empty destination is allowed
    with atomic_folder(dest) as partial:
        (partial / "a.txt").write_text("a")
    assert (dest / "a.txt").read_text() == "a" and not partial_folder(dest).exists()


def test_a_bundle_moved_aside_by_a_killed_export_is_put_back(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    old = tmp_path / ".bundle.old-1700000000000"
    old.mkdir()
    (old / BUNDLE_FILE).write_text("{}")
    older = tmp_path / ".bundle.old-1600000000000"
    older.mkdir()
    partial = tmp_path / f".bundle.partial-{dead_pid()}"
    partial.mkdir()
    _recover(out)
    assert (out / BUNDLE_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_renaming_a_class_failing_midway_changes_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(tmp_path, per_class=4, labelled_per_class=4)
    try:
        cat = ws.catalog
        before = [(r.id, r.label, r.label_version) for r in cat.images()]
        real = catalog_module._label_written
        written: list[int] = []

        def full_on_third(*args: object, **kwargs: object) -> int | None:
            written.append(1)
            if len(written) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(catalog_module, "_label_written", full_on_third)
        with pytest.raises(OSError):
            cat.relabel_class("1", "one")
        assert [(r.id, r.label, r.label_version) for r in cat.images()] == before
        assert "one" not in cat.classes() and "1" in cat.classes()
        monkeypatch.undo()
        assert cat.relabel_class("1", "one") == 4 and "1" not in cat.classes()
    finally:
        ws.close()
