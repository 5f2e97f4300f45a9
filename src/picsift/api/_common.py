"""What the API modules share: workspace paths and run look-up.

The stage packages are imported inside the functions, not at the top: `import picsift.api` must stay cheap
(no torch, scikit-learn or FastAPI) so that `picsift status` and `picsift --help` answer at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from picsift.store import Workspace


WorkspaceArg = str | Path | None
"""A workspace folder; None means ./picsift-workspace or $PICSIFT_WORKSPACE."""


def workspace_path(workspace: WorkspaceArg) -> Path | None:
    """`workspace` as a Path, or None (the default workspace)."""
    return Path(workspace) if workspace is not None else None


def open_run(workspace: WorkspaceArg, run: str | Path | None) -> tuple[Workspace | None, Path]:
    """A run id, a run folder (one holding a run's files), or None for the workspace's latest completed run ->
    (the workspace, opened unless the run was given as a run folder, which needs none; the run folder).

    Raises WorkspaceError (no workspace) or RunNotFoundError (no such run, or no completed run yet): a folder that
    holds no run's files (`..`, `/etc`) is `no run '..' in workspace W`.
    """
    from picsift.runs import is_run_folder, resolve_run
    from picsift.store import Workspace

    ws = None
    if not is_run_folder(run):
        ws = Workspace.open(workspace)
    return ws, resolve_run(ws, run)


def run_dir(workspace: WorkspaceArg, run: str | Path | None) -> Path:
    """The run folder of `open_run` (same errors)."""
    return open_run(workspace, run)[1]
