"""Workspaces for the labelling tests: digits PNGs catalogued directly (no import stage needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image as PILImage

from picsift.label_app import LabelSettings, create_app
from picsift.store import Workspace
from picsift.store.schema import Image
from support.images import write_digits

CLASSES = ["0", "1", "2"]


def make_workspace(
    tmp: Path,
    per_class: int = 8,
    labelled_per_class: int = 3,
    split: str | None = "train",
    db_url: str | None = None,
) -> Workspace:
    """3 digit classes, `per_class` PNGs each; the first `labelled_per_class` of each class labelled; the
    catalog in `db_url` when given (else the workspace's catalog.sqlite).

    Image ids are assigned class by class in file order; the true class of every image is recorded
    in its folder name, so tests can reveal ground truth.
    """
    folder = write_digits(tmp / "digits", per_class=per_class, classes=len(CLASSES))
    ws = Workspace.open(tmp / "ws", create=True, db_url=db_url)
    rows = []
    for c in CLASSES:
        for f in sorted((folder / c).glob("*.png")):
            data = f.read_bytes()
            with PILImage.open(f) as im:
                w, h = im.size
            rows.append(
                Image(
                    sha256=hashlib.sha256(data).hexdigest(),
                    path=str(f),
                    source=str(folder),
                    byte_size=len(data),
                    width=w,
                    height=h,
                    format="PNG",
                    mode="RGB",
                    split=split,
                )
            )
    ws.catalog.add_images(rows)
    for c in CLASSES:
        for r in [r for r in ws.catalog.images() if Path(r.path).parent.name == c][:labelled_per_class]:
            ws.catalog.set_label(r.id, c, origin="import", annotator="fixture")
    return ws


def truth(ws: Workspace) -> dict[int, str]:
    return {r.id: Path(r.path).parent.name for r in ws.catalog.images(include_excluded=True)}


def app_client(ws: Workspace, **settings: Any) -> TestClient:
    """A test client of the labelling app on `ws`, as annotator "alice": addressed as http://localhost (the app
    answers loopback names only) and sending X-Picsift-Client like the page's scripts."""
    app = create_app(LabelSettings(workspace=ws.root, annotator="alice", **settings))
    return TestClient(app, base_url="http://localhost", headers={"X-Picsift-Client": "test"})
