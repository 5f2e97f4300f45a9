"""The Python API: the same operations as the CLI, in plain functions."""

from __future__ import annotations

from pathlib import Path

from picsift.deploy.predictor import Prediction, Predictor, expand_inputs
from picsift.store import Workspace
from picsift.train.runs import resolve_run


def predict(
    paths: list[str] | str,
    *,
    workspace: str | Path | None = None,
    run: str | Path | None = None,
    bundle: str | Path | None = None,
    top_k: int = 1,
) -> list[Prediction]:
    """Predict files, folders or globs with a run (default: the workspace's latest) or a bundle."""
    items = expand_inputs([paths] if isinstance(paths, str) else list(paths))
    if bundle is not None:
        from picsift.deploy.bundle import BundlePredictor  # type: ignore[import-not-found]

        return BundlePredictor.load(Path(bundle)).predict_paths(items, top_k=top_k)  # type: ignore[no-any-return]
    ws = None
    if run is None or not Path(str(run)).is_dir():
        ws = Workspace.open(workspace)
    run_dir = resolve_run(ws, run)
    return Predictor.from_run(run_dir).predict_paths(items, top_k=top_k)
