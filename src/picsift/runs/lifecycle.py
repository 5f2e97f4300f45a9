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


def is_run_folder(run: str | Path | None) -> bool:
    """True when `run` names a folder holding a run's files (`RunFolder.holds_run_files`), complete or damaged;
    False for any other folder (`..`, `/etc`), for a run id and for None."""
    return run is not None and str(run) != "" and RunFolder(Path(str(run))).holds_run_files()


def _run_by_id(ws: Workspace, run: str) -> RunFolder | None:
    """The folder `runs/<run>` of `ws` when `run` is a plain folder name there (no path separator, not `.` or
    `..`, not hidden), else None."""
    if not run or run.startswith(".") or "/" in run or "\\" in run:
        return None
    by_id = ws.runs_dir / run
    return RunFolder(by_id) if _is_dir(by_id) else None


def no_run_error(ws: Workspace | None, run: str | Path) -> RunNotFoundError:
    """RunNotFoundError for a `--run` that is neither a run of `ws` nor a run folder, naming the workspace and
    its latest runs (or where to list them)."""
    if ws is None:
        return RunNotFoundError(
            f"no run {str(run)!r}: not a run folder; give a run id with --workspace W, or the folder of a run"
        )
    known = ", ".join(r.name for r in list_runs(ws)[-5:])
    where = f"no run {str(run)!r} in workspace {ws.root}"
    return RunNotFoundError(where + (f"; latest runs: {known}" if known else "; `picsift runs` lists its runs"))


def open_run(ws: Workspace | None, run: str | Path | None) -> RunFolder:
    """A run id of `ws` (or a unique prefix of a completed run's id), a run folder (one holding a run's files,
    `is_run_folder`), or None for the latest completed run of `ws`.

    Raises RunNotFoundError naming the workspace and its latest runs when nothing matches: any other folder
    (`..`, `/etc`) is no run.
    """
    if run is not None:
        if is_run_folder(run):
            return RunFolder(Path(str(run)).resolve())
        if ws is not None:
            by_id = _run_by_id(ws, str(run))
            if by_id is not None:
                return by_id
            matches = [r for r in list_runs(ws) if r.name.startswith(str(run))] if str(run) else []
            if len(matches) == 1:
                return matches[0]
        raise no_run_error(ws, run)
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
    """What `--workspace W --run R` name: R as a run folder needs no workspace; an id or None (the latest run)
    is looked up in W (default ./picsift-workspace or $PICSIFT_WORKSPACE)."""
    if is_run_folder(run):
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
