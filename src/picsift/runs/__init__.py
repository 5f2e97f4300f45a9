"""Run folders: `RunFolder` alone knows a run's files; `open_run`, `list_runs` and `new_run` find and make them."""

from picsift.runs.environment import environment, package_versions
from picsift.runs.folder import ARTIFACT_DIR, ARTIFACT_META, MetricsLog, RunFolder, read_json, write_json
from picsift.runs.lifecycle import (
    is_run_folder,
    list_runs,
    locate_run,
    new_run,
    new_run_dir,
    no_run_error,
    open_run,
    resolve_run,
    run_workspace,
    workspace_run,
)

__all__ = [
    "ARTIFACT_DIR",
    "ARTIFACT_META",
    "MetricsLog",
    "RunFolder",
    "environment",
    "is_run_folder",
    "list_runs",
    "locate_run",
    "new_run",
    "new_run_dir",
    "no_run_error",
    "open_run",
    "package_versions",
    "read_json",
    "resolve_run",
    "run_workspace",
    "workspace_run",
    "write_json",
]
