"""Run folders now live in `picsift.runs`; these names stay importable from here (paths, not RunFolders)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from picsift.runs import MetricsLog, RunFolder, environment, package_versions, resolve_run, write_json
from picsift.runs import list_runs as _list_runs
from picsift.runs import new_run as _new_run
from picsift.store import Workspace


@contextlib.contextmanager
def new_run(ws: Workspace, model: str, name: str | None = None) -> Iterator[Path]:
    """`picsift.runs.new_run`, yielding the folder's path."""
    with _new_run(ws, model, name) as run:
        yield run.path


def list_runs(ws: Workspace) -> list[Path]:
    return [r.path for r in _list_runs(ws)]


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    return RunFolder(run_dir).read_history()


__all__ = [
    "MetricsLog",
    "environment",
    "list_runs",
    "new_run",
    "package_versions",
    "read_history",
    "resolve_run",
    "write_json",
]
