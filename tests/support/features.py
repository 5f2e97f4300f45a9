"""A labelled digits workspace filled through the catalog API (the features, classical and cluster tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from picsift.store import Workspace
from picsift.store.schema import Image
from support.images import write_digits


def make_workspace(root: Path, per_class: int = 12, classes: int = 3, split_every: int = 0) -> Workspace:
    """A labelled workspace from digits PNGs (the catalog API, as the import stage would fill it)."""
    folder = write_digits(root / "images", per_class=per_class, classes=classes)
    ws = Workspace.open(root / "ws", create=True)
    files = sorted(folder.rglob("*.png"))
    images = []
    for i, f in enumerate(files):
        split = None
        if split_every:
            split = "test" if i % split_every == 0 else ("val" if i % split_every == 1 else "train")
        data = f.read_bytes()
        images.append(
            Image(
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(f),
                source=str(folder),
                byte_size=len(data),
                width=16,
                height=16,
                format="PNG",
                mode="RGB",
                split=split or "train",
            )
        )
    ws.catalog.add_images(images)
    for row in ws.catalog.images():
        ws.catalog.set_label(row.id, Path(row.path).parent.name, origin="import")
    return ws
