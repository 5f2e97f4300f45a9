"""A catalog over an existing folder-per-class tree (the training tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from picsift.models.registry import get_spec
from picsift.store import Workspace
from picsift.store.schema import Image
from picsift.train.data import TrainData
from support.images import write_digits


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


def digits_arrays(tmp: Path, per_class: int = 40, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    root = write_digits(tmp / "digits", per_class=per_class, classes=classes, size=16)
    xs, ys = [], []
    for c in range(classes):
        for f in sorted((root / str(c)).glob("*.png")):
            xs.append(np.asarray(PILImage.open(f).convert("RGB"), dtype=np.uint8))
            ys.append(c)
    return np.stack(xs), np.array(ys, dtype=np.int64)


def digits_data(tmp: Path) -> TrainData:
    x, y = digits_arrays(tmp)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    spec = get_spec("fastcnn")
    return TrainData(
        classes=["0", "1", "2"],
        data_config=spec.data_config.with_size(16),
        x_train=x[:90],
        y_train=y[:90],
        x_val=x[90:],
        y_val=y[90:],
    )
