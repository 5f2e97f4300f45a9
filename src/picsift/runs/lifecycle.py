"""Finding, listing and creating run folders in a workspace: `runs/<UTC stamp>-<name>/`."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from picsift.errors import RunNotFoundError, WorkspaceError
from picsift.filenames import inside, safe_filename
from picsift.runs.folder import RunFolder
from picsift.store import Workspace, is_workspace


def new_run_dir(ws: Workspace, name: str) -> RunFolder:
    """Create `runs/<UTC stamp>-<name>/` (name made safe for a folder; `-2`, `-3`... when taken)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    base = safe_filename(f"{stamp}-{slug}", max_bytes=200)  # room for a "-<n>" suffix and long `--name`s
    # Compared ignoring case: on a case-insensitive file system `Cat` would reuse the folder of `cat`.
    taken = {p.name.casefold() for p in ws.runs_dir.iterdir()} if ws.runs_dir.is_dir() else set()
    ws.runs_dir.mkdir(parents=True, exist_ok=True)
    i = 1
    while True:
        path = inside(ws.runs_dir, base if i == 1 else f"{base}-{i}")
        if path.name.casefold() not in taken:
            try:  # the claim itself: of two runs started in the same second, one gets the name, the other the next
                path.mkdir()
                return RunFolder(path)
            except FileExistsError:
                pass
        i += 1


@contextlib.contextmanager
def new_run(ws: Workspace, model: str, name: str | None = None) -> Iterator[RunFolder]:
    """Create a run folder named after `name` (else `model`) and yield it; the one owner of a run folder's life.

    A run that stops for any reason (bad input, a crash, Ctrl+C) before it saved a checkpoint leaves no
    half-made folder behind; one with a checkpoint keeps it, for `--resume`.
    """
    run = new_run_dir(ws, name or model)
    try:
        yield run
    except BaseException:
        if not run.checkpoint_path.exists():
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def list_runs(ws: Workspace) -> list[RunFolder]:
    """Completed runs (those with a model artifact), oldest first."""
    if not ws.runs_dir.exists():
        return []
    return sorted((RunFolder(p) for p in ws.runs_dir.iterdir() if RunFolder(p).has_artifact()), key=lambda r: r.path)


def _is_dir(path: Path) -> bool:
    """Whether `path` is a folder; False too for a name no folder can have (too long, a NUL character), as a
    run name typed in a URL may be."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def open_run(ws: Workspace | None, run: str | Path | None) -> RunFolder:
    """A run id (or a unique prefix of one), a run folder, or None for the latest completed run of `ws`.

    Raises RunNotFoundError naming the recent runs when nothing matches.
    """
    if run is not None:
        candidate = Path(run)
        if _is_dir(candidate):
            return RunFolder(candidate.resolve())
        if ws is not None:
            by_id = ws.runs_dir / str(run)
            if _is_dir(by_id):
                return RunFolder(by_id)
            matches = [r for r in list_runs(ws) if r.name.startswith(str(run))]
            if len(matches) == 1:
                return matches[0]
        known = ", ".join(r.name for r in list_runs(ws)[-5:]) if ws else ""
        raise RunNotFoundError(f"no run {run!r}" + (f"; recent runs: {known}" if known else ""))
    if ws is None:
        raise RunNotFoundError("no --run given and no workspace to find the latest run in")
    runs = list_runs(ws)
    if not runs:
        raise RunNotFoundError(f"no trained runs in {ws.root}: run `picsift train` first")
    return runs[-1]


def workspace_run(ws: Workspace, run: str) -> RunFolder:
    """A completed run of `ws` named by its id or a unique prefix of one, and nothing else: never a folder path,
    so a name a web client sends cannot reach a folder outside the workspace's runs/ (`open_run` also takes
    folders, for the command line). Raises RunNotFoundError when no single run of the workspace matches."""
    runs = list_runs(ws)
    exact = [r for r in runs if r.name == run]
    matches = exact or ([r for r in runs if r.name.startswith(run)] if run else [])
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.name for r in runs[-5:])
    raise RunNotFoundError(
        f"no run {run!r} in this workspace" + (f"; recent runs: {known}" if known else "; train one first")
    )


def locate_run(workspace: str | Path | None, run: str | Path | None) -> RunFolder:
    """What `--workspace W --run R` name: R as a folder needs no workspace; an id or None (the latest run)
    is looked up in W (default ./picsift-workspace or $PICSIFT_WORKSPACE)."""
    if run is not None and _is_dir(Path(str(run))):
        return open_run(None, run)
    return open_run(Workspace.open(workspace), run)


def resolve_run(ws: Workspace | None, run: str | Path | None) -> Path:
    """`open_run(ws, run).path`."""
    return open_run(ws, run).path


def run_workspace(run: RunFolder, ws: Workspace | None = None) -> Workspace:
    """The workspace holding a run's images: `ws` if given, else the one the run folder sits in, else the one
    its env.json recorded. Raises WorkspaceError when neither is there any more."""
    if ws is not None:
        return ws
    recorded = run.read_env_if_any().get("workspace")
    for root in (run.path.parent.parent, Path(recorded) if recorded else None):
        if root is not None and is_workspace(root):
            return Workspace.open(root)
    raise WorkspaceError(
        f"run {run.name} was trained in workspace {recorded!r}, which is not there any more: "
        "pass --workspace to the workspace holding its images"
    )
