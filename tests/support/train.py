"""A catalog over an existing folder-per-class tree (the training tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from picsift.store import Workspace
from picsift.store.schema import Image


def catalog_workspace(root: Path, images: Path) -> Path:
    """A workspace whose catalog lists `images/<class>/*.png`, 1 in 5 held out as test."""
    ws = Workspace.open(root, create=True)
    rows = []
    for i, p in enumerate(sorted(images.rglob("*.png"))):
        data = p.read_bytes()
        rows.append(
            Image(
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(p),
                byte_size=len(data),
                width=16,
                height=16,
                split="test" if i % 5 == 0 else "train",
            )
        )
    ws.catalog.add_images(rows)
    for r in ws.catalog.images():
        ws.catalog.set_label(r.id, Path(r.path).parent.name, origin="import")
    ws.close()
    return root
