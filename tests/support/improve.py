"""Tiny digits workspaces with seeded random splits and quick fast-CNN configs (the improve tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from picsift.config import TrainConfig
from picsift.store import Workspace
from picsift.store.schema import Image
from support.images import write_digits


def make_workspace(
    root: Path, classes: int = 3, per_class: int = 30, seed: int = 0, skip: dict[int, int] | None = None
) -> Workspace:
    """A workspace over digits PNGs; `skip` keeps only the first n images of some classes (imbalance)."""
    folder = write_digits(root / "images", per_class=per_class, classes=classes, seed=seed)
    ws = Workspace.open(root / "ws", create=True)
    files = []
    for c in range(classes):
        found = sorted((folder / str(c)).glob("*.png"))
        if skip and c in skip:
            found = found[: skip[c]]
        files += [(f, str(c)) for f in found]
    ws.catalog.add_images(
        Image(
            sha256=hashlib.sha256(f.read_bytes()).hexdigest(),
            path=str(f),
            source=str(folder),
            width=16,
            height=16,
            format="PNG",
            mode="RGB",
        )
        for f, _ in files
    )
    by_path = {r.path: r.id for r in ws.catalog.images()}
    for f, label in files:
        ws.catalog.set_label(by_path[str(f)], label, origin="import")
    rng = np.random.default_rng(seed)
    ids = list(by_path.values())
    rng.shuffle(ids)
    n = len(ids)
    ws.catalog.set_splits({i: ("val" if k < n // 5 else "test" if k < n // 3 else "train") for k, i in enumerate(ids)})
    return ws


def quick_config(ws: Workspace, **kw: object) -> TrainConfig:
    base = dict(
        workspace=ws.root,
        model="fastcnn",
        epochs=4,
        batch_size=32,
        device="cpu",
        amp=False,
        seed=0,
        model_params={"widths": [8, 16, 32], "threads": 1},
        calibrate=False,  # the improve tests fit each setting themselves, from a run that has none
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]
