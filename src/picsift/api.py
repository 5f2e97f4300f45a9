"""The Python API: the same operations as the CLI, in plain functions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.deploy.predictor import Prediction, Predictor, expand_inputs
from picsift.evaluate.pipeline import EvalResult
from picsift.store import Workspace
from picsift.train.runs import resolve_run

if TYPE_CHECKING:
    from picsift.ingest import ImportResult


def train_model(workspace: str | Path | None = None, model: str = "fastcnn", **settings: Any) -> Any:
    """Train a model on the workspace's labelled images; settings are TrainConfig fields. Returns a RunResult."""
    from picsift import train as train_stage
    from picsift.config import TrainConfig

    return train_stage.run(TrainConfig(workspace=Path(workspace) if workspace else None, model=model, **settings))


def predict(
    paths: list[str] | str,
    *,
    workspace: str | Path | None = None,
    run: str | Path | None = None,
    bundle: str | Path | None = None,
    top_k: int = 1,
    tta: bool = False,
    reject_unknown: bool = False,
) -> list[Prediction]:
    """Predict files, folders or globs with a run (default: the workspace's latest) or a bundle.

    tta: average over the run's test-time views (tta.json); reject_unknown: label images unlike
    every class "unknown" (thresholds from unknown.json, fitted on validation data on first use).
    """
    items = expand_inputs([paths] if isinstance(paths, str) else list(paths))
    if bundle is not None:
        from picsift.deploy.bundle import BundlePredictor  # type: ignore[import-not-found]

        return BundlePredictor.load(Path(bundle)).predict_paths(items, top_k=top_k)  # type: ignore[no-any-return]
    ws = None
    if run is None or not Path(str(run)).is_dir():
        ws = Workspace.open(workspace)
    run_dir = resolve_run(ws, run)
    predictor = Predictor.from_run(run_dir)
    if tta:
        predictor.enable_tta(run_dir)
    if reject_unknown:
        from picsift.improve.unknown import load_detector

        predictor.rejector = load_detector(run_dir, predictor, ws)
    return predictor.predict_paths(items, top_k=top_k)


def evaluate_run(
    *,
    workspace: str | Path | None = None,
    run: str | Path | None = None,
    split: str = "auto",
    device: str = "auto",
    batch_size: int = 256,
    tta: bool = False,
    strict: bool = False,
) -> EvalResult:
    """Score a run (default: the latest) on its test split, else its validation split; writes
    metrics.json, predictions.csv and report.html into the run folder. Images whose file is missing or no
    longer decodes are skipped (`result.skipped_images`), or raise MissingImagesError with `strict`."""
    from picsift.config import EvalConfig
    from picsift.evaluate.pipeline import run as evaluate_run

    cfg = EvalConfig(
        workspace=Path(workspace) if workspace is not None else None,
        run=str(run) if run is not None else None,
        split=split,
        device=device,
        batch_size=batch_size,
        tta=tta,
        strict=strict,
    )
    return evaluate_run(cfg)


def import_images(
    source: str | Path,
    *,
    workspace: str | Path | None = None,
    label: str | None = None,
    split: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    url_timeout_s: float = 15.0,
    url_retries: int = 2,
    url_max_bytes: int = 20 * 1024 * 1024,
) -> ImportResult:
    """Import a folder, CSV manifest, URL list or zip/tar archive into the workspace catalog."""
    from picsift import ingest
    from picsift.config import ImportConfig

    cfg = ImportConfig(
        source=str(source),
        workspace=Path(workspace) if workspace is not None else None,
        label=label,
        split=split,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        url_timeout_s=url_timeout_s,
        url_retries=url_retries,
        url_max_bytes=url_max_bytes,
    )
    return ingest.run(cfg)


def status(workspace: str | Path | None = None) -> dict[str, Any]:
    """Images, classes, counts per split and class, unreadable files and why, duplicates, imports."""
    from picsift import ingest

    return ingest.status(workspace)


def clean(workspace: str | Path | None = None, **settings: Any) -> Any:
    """Run the clean checks (`picsift clean`); settings are CleanConfig fields. Returns a CleanResult."""
    from picsift import curate
    from picsift.config import CleanConfig

    return curate.run(CleanConfig(workspace=Path(workspace) if workspace else None, **settings))


def clean_apply(workspace: str | Path | None = None, **options: bool) -> dict[str, Any]:
    """Record exclusions from the last findings (`picsift clean --apply`); options are ApplyOptions fields,
    e.g. near_duplicates=True, quality=True. Returns the action id and counts."""
    from picsift import curate

    return curate.apply(workspace, curate.ApplyOptions(**options))


def clean_undo(workspace: str | Path | None = None, action_id: int | None = None) -> dict[str, Any]:
    """Undo a clean action (`picsift clean --undo [ACTION_ID]`): its images are included again."""
    from picsift import curate

    return curate.undo(workspace, action_id)


def export_clean(
    dest: str | Path, workspace: str | Path | None = None, *, by_split: bool = False, link: bool = False
) -> dict[str, Any]:
    """Write the clean labelled images to DEST, folder per class, as copies (`link`: hard links, which share
    their content with the originals)."""
    from picsift import curate

    return curate.export_clean(workspace, dest, by_split=by_split, link=link)
