"""Reading what `picsift predict --out` writes: the manifest and every shard's rows, in shard order."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any


def manifest(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "manifest.json").read_text()))


def shard_rows(path: Path) -> list[dict[str, Any]]:
    """One shard's rows as dicts; CSV's empty cells and Parquet's nulls both become None, numbers floats."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(path).to_pylist())
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row: dict[str, Any] = {k: (v if v != "" else None) for k, v in r.items()}
        for k, v in row.items():
            if k.startswith("confidence") and v is not None:
                row[k] = float(v)
        out.append(row)
    return out


def all_rows(out: Path) -> list[dict[str, Any]]:
    """Every row of the manifest's shards, in shard order."""
    rows: list[dict[str, Any]] = []
    for s in manifest(out)["shards"]:
        rows += shard_rows(out / s["file"])
    return rows


def symlinked_images(images: list[Path], folder: Path, n: int) -> list[str]:
    """`n` links (00000.png, ...) in `folder` to `images` in turn: many inputs from a few real files."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        link = folder / f"{i:05d}{images[i % len(images)].suffix}"
        os.symlink(images[i % len(images)], link)
        paths.append(str(link))
    return paths
