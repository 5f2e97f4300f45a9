"""Shared helpers for the improve tests (tiny digits workspaces, quick runs) and rundata tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from support.improve import make_workspace, quick_config


def test_split_data_matches_data_json(tmp_path: Path) -> None:
    import json

    from picsift import train
    from picsift.improve.rundata import split_data

    ws = make_workspace(tmp_path)
    result = train.run(quick_config(ws, epochs=1))
    data = json.loads((result.run_dir / "data.json").read_text())
    val = split_data(result.run_dir, "val")
    assert val.ids == data["val_ids"]
    assert val.x.dtype == np.uint8 and val.x.shape[0] == len(val.y) == len(data["val_ids"])
    assert set(val.y.tolist()) <= {0, 1, 2}
