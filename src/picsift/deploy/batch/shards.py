"""One shard of predictions: its columns, its rows and its file (CSV or Parquet), written atomically.

Columns, one row per input in input order:

    path            the input as enumerated
    label           the top class ("unknown" when unknown rejection rejects the image); empty for an error
    confidence      the top class's probability (after the inference spec: class scales, temperature)
    error           why the file could not be read ("no such file", "truncated image: ..."); empty otherwise
    rejected        with unknown rejection only: whether the image was called unknown
    label_2, confidence_2, ...   with top_k > 1: the next classes, best first

CSV leaves missing values empty (the columns of `picsift predict --csv`); Parquet stores them as nulls.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from picsift.atomic import atomic_path
from picsift.errors import ConfigError

FORMATS = ("csv", "parquet")


def columns(top_k: int, reject_unknown: bool) -> list[str]:
    """The column names for `top_k` classes per row (already capped at the number of classes)."""
    cols = ["path", "label", "confidence", "error"]
    if reject_unknown:
        cols.append("rejected")
    for k in range(2, top_k + 1):
        cols += [f"label_{k}", f"confidence_{k}"]
    return cols


class ShardRows:
    """The rows of one shard, held as columns until the shard is written."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.data: dict[str, list[Any]] = {n: [] for n in names}

    def __len__(self) -> int:
        return len(self.data["path"])

    @property
    def errors(self) -> int:
        """Rows whose file could not be read."""
        return sum(e is not None for e in self.data["error"])

    def add_error(self, path: str, error: str) -> None:
        """A row for a file that could not be read."""
        for n in self.names:
            self.data[n].append(None)
        self.data["path"][-1] = path
        self.data["error"][-1] = error

    def add_prediction(self, path: str, top: list[tuple[str, float]], rejected: bool | None) -> None:
        """A row for a predicted file: `top` (class, probability) pairs, best first; `rejected` None without
        unknown rejection."""
        row: dict[str, Any] = {"path": path, "label": top[0][0], "confidence": top[0][1], "error": None}
        if "rejected" in self.data:
            row["rejected"] = bool(rejected)
            if rejected:
                row["label"] = "unknown"
        for k, (label, p) in enumerate(top[1:], start=2):
            row[f"label_{k}"], row[f"confidence_{k}"] = label, p
        for n in self.names:
            self.data[n].append(row.get(n))


def _write_csv(path: Path, rows: ShardRows) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(rows.names)
        cols = [rows.data[n] for n in rows.names]
        w.writerows([["" if v is None else v for v in row] for row in zip(*cols, strict=True)])


def _write_parquet(path: Path, rows: ShardRows) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow ships with picsift[deploy]
        raise ConfigError("--format parquet needs pyarrow: pip install 'picsift[deploy]'") from e

    def kind(name: str) -> Any:
        if name.startswith("confidence"):
            return pa.float64()
        return pa.bool_() if name == "rejected" else pa.string()

    schema = pa.schema([(n, kind(n)) for n in rows.names])
    pq.write_table(pa.table(rows.data, schema=schema), path)


def write_shard(path: Path, fmt: str, rows: ShardRows) -> None:
    """Write `rows` to `path` as `fmt` ("csv" | "parquet") atomically: the file appears complete or not at all.
    Raises OSError from the disk."""
    with atomic_path(path) as tmp:
        (_write_csv if fmt == "csv" else _write_parquet)(tmp, rows)
