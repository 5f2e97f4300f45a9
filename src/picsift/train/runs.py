"""Run folders: `runs/<id>/` with config.json, env.json, metrics.jsonl, model/, metrics.json, report.html."""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from picsift import jsonio
from picsift.errors import RunNotFoundError
from picsift.filenames import inside, safe_filename
from picsift.store import Workspace

PACKAGES = (
    "picsift",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pillow",
    "scikit-learn",
    "scikit-image",
    "sqlalchemy",
    "onnxruntime",
    "cleanlab",
)


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": package_versions(),
    }


def new_run_dir(ws: Workspace, model: str, name: str | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or model).strip("-") or "run"
    base = safe_filename(f"{stamp}-{slug}", max_bytes=200)  # room for a "-<n>" suffix and long `--name`s
    # Compared ignoring case: on a case-insensitive file system `Cat` would reuse the folder of `cat`.
    taken = {p.name.casefold() for p in ws.runs_dir.iterdir()} if ws.runs_dir.is_dir() else set()
    path = inside(ws.runs_dir, base)
    i = 1
    while path.name.casefold() in taken or path.exists():
        i += 1
        path = inside(ws.runs_dir, f"{base}-{i}")
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def new_run(ws: Workspace, model: str, name: str | None = None) -> Iterator[Path]:
    """Create `runs/<UTC stamp>-<name or model>/` and yield it; the one owner of a run folder's life.

    A run that stops for any reason (bad input, a crash, Ctrl+C) before it saved a checkpoint leaves no
    half-made folder behind; one with a checkpoint keeps it, for `--resume`.
    """
    run_dir = new_run_dir(ws, model, name)
    try:
        yield run_dir
    except BaseException:
        if not (run_dir / "checkpoint.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def list_runs(ws: Workspace) -> list[Path]:
    """Completed runs (those with a model artifact), oldest first."""
    if not ws.runs_dir.exists():
        return []
    return sorted(p for p in ws.runs_dir.iterdir() if (p / "model" / "model.json").exists())


def resolve_run(ws: Workspace | None, run: str | Path | None) -> Path:
    """A run id, a run folder, or None for the latest completed run of the workspace."""
    if run is not None:
        candidate = Path(run)
        if candidate.is_dir():
            return candidate.resolve()
        if ws is not None:
            by_id = ws.runs_dir / str(run)
            if by_id.is_dir():
                return by_id
            matches = [p for p in list_runs(ws) if p.name.startswith(str(run))]
            if len(matches) == 1:
                return matches[0]
        known = ", ".join(p.name for p in list_runs(ws)[-5:]) if ws else ""
        raise RunNotFoundError(f"no run {run!r}" + (f"; recent runs: {known}" if known else ""))
    if ws is None:
        raise RunNotFoundError("no --run given and no workspace to find the latest run in")
    runs = list_runs(ws)
    if not runs:
        raise RunNotFoundError(f"no trained runs in {ws.root}: run `picsift train` first")
    return runs[-1]


def write_json(path: Path, obj: Any) -> None:
    """A run folder's JSON file, strict and atomic (see picsift.jsonio); other objects are written as str()."""
    jsonio.write_json(path, obj, default=str)


class MetricsLog:
    """Appends one JSON line per epoch to metrics.jsonl (flushed, so a crash keeps what was done)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        jsonio.append_json_line(self.path, row, default=float)


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
