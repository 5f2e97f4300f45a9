"""One length rule for every label (labels_text.MAX_LABEL_CHARS, 1,000 characters once normalised), whichever way
it enters: the labelling app's classes and labels, set_label, import (manifest cells, --label), label
files and feedback. Longer is refused with the limit named, and nothing already stored changes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift import api
from picsift.config import ImportConfig
from picsift.errors import DatasetError, LabelError
from picsift.ingest import run as run_import
from picsift.labels_text import MAX_LABEL_CHARS, normalize_label
from picsift.store.feedback_store import FeedbackStore
from support.label import app_client, make_workspace

LIMIT = f"a label is at most {MAX_LABEL_CHARS} characters long"
LONGEST = "x" * MAX_LABEL_CHARS
TOO_LONG = "y" * (MAX_LABEL_CHARS + 1)


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), seed * 13 % 256, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_the_rule() -> None:
    assert MAX_LABEL_CHARS == 1000
    assert normalize_label(f"  {LONGEST}\n") == LONGEST  # counted after stripping
    assert normalize_label("e\u0301" * MAX_LABEL_CHARS) == "\u00e9" * MAX_LABEL_CHARS  # and after NFC
    with pytest.raises(LabelError, match=f"{LIMIT}; got 1001 characters"):
        normalize_label(TOO_LONG)


def test_the_labelling_app_refuses_a_megabyte_class_name(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=1)
    before = ws.catalog.classes()
    image = ws.catalog.images()[0]
    with app_client(ws) as http:
        for path, body in [
            ("/api/classes", {"name": "z" * 1_000_000}),
            ("/api/classes", {"name": TOO_LONG}),
            ("/api/classes/rename", {"old": before[0], "new": TOO_LONG}),
            ("/api/classes/merge", {"sources": [before[0]], "target": TOO_LONG}),
            ("/api/labels", {"image_ids": [image.id], "label": TOO_LONG}),
        ]:
            r = http.post(path, json=body)
            assert r.status_code == 400, (path, r.text)
            assert LIMIT in r.json()["detail"]
        assert http.post("/api/classes", json={"name": LONGEST}).status_code == 200
    assert ws.catalog.classes() == sorted([*before, LONGEST])
    assert ws.catalog.image(image.id).label == image.label
    with pytest.raises(LabelError, match=LIMIT):
        ws.catalog.set_label(image.id, TOO_LONG)
    with pytest.raises(LabelError, match=LIMIT):
        ws.catalog.propose_labels([(image.id, TOO_LONG, 0.5)])
    assert ws.catalog.proposals() == []
    ws.close()


def test_import_refuses_a_too_long_label_naming_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png(1))
    (tmp_path / "b.png").write_bytes(_png(2))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,label\na.png,cat\nb.png,{TOO_LONG}\n")
    ws_root = tmp_path / "ws"
    with pytest.raises(DatasetError, match=f"manifest.csv line 3: {LIMIT}"):
        run_import(ImportConfig(source=str(manifest), workspace=ws_root))
    with pytest.raises(LabelError, match=LIMIT):
        run_import(ImportConfig(source=str(tmp_path / "a.png"), workspace=ws_root, label=TOO_LONG))
    assert not ws_root.exists()  # a failed import leaves no workspace behind


def test_a_label_file_with_a_too_long_label_is_refused_whole(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=2, labelled_per_class=0)
    rows = ws.catalog.images()
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label\n{rows[0].path},cat\n{rows[1].path},{TOO_LONG}\n")
    with pytest.raises(DatasetError, match=f"labels.csv line 3: {LIMIT}"):
        api.import_labels(labels, workspace=ws.root)
    assert [r.label for r in ws.catalog.images()] == [None] * len(rows)  # the good first line not applied either
    ws.close()


def test_feedback_labels_follow_the_same_rule(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=1, labelled_per_class=0)
    store = FeedbackStore(ws)
    assert store.add(LONGEST, image=_png(1)).label == LONGEST  # was capped at 200 before the one rule
    with pytest.raises(LabelError, match=LIMIT):
        store.add(TOO_LONG, image=_png(2))
    assert len(store.items()) == 1
    ws.close()
