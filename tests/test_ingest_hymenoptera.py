"""A real photo dataset: every file under ../shared/datasets/hymenoptera is accounted for."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from picsift.config import ImportConfig
from picsift.ingest import run
from picsift.store import Workspace
from support.images import DATASETS, require


@pytest.mark.datasets
def test_hymenoptera_every_file_accounted_for(tmp_path: Path) -> None:
    root = DATASETS / "hymenoptera"
    require(root.is_dir(), f"dataset not found at {root}")
    on_disk = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
    ws = tmp_path / "ws"

    result = run(ImportConfig(source=str(root), workspace=ws))
    assert result.kind == "split-folders"
    assert result.files_seen == len(on_disk)
    w = Workspace.open(ws)
    rows = w.catalog.images(readable=None, include_excluded=True)
    skipped = [i.path for i in result.skipped]
    assert len(rows) + len(skipped) == len(on_disk)
    assert sorted([r.path for r in rows] + skipped) == on_disk
    # The source's own train/val folders are kept, with labels from the class folders.
    assert {r.split_origin for r in rows} == {"source"}
    per = Counter((r.split, r.label) for r in rows)
    for split in ("train", "val"):
        for label in ("ants", "bees"):
            n = sum(1 for p in on_disk if f"/{split}/{label}/" in p)
            assert per[split, label] == n
    # Real photos of many sizes and a GIF decode; the sizes are real.
    assert sum(r.readable for r in rows) >= len(rows) - 1
    assert any(r.format == "GIF" for r in rows) and max(r.width or 0 for r in rows) > 1000
    summary = w.catalog.summary()
    w.close()

    again = run(ImportConfig(source=str(root), workspace=ws))
    assert again.rows_added == 0 and again.already_present == len(rows)
    w = Workspace.open(ws)
    assert w.catalog.summary()["catalog_hash"] == summary["catalog_hash"]
    w.close()
