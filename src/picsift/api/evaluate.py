"""5 EVALUATE: score a run on held-out images, and predict new ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, open_run, workspace_path

if TYPE_CHECKING:
    from picsift.data.walk import SkippedFile
    from picsift.evaluate.pipeline import EvalResult
    from picsift.inference import Prediction


def evaluate_run(
    *,
    workspace: WorkspaceArg = None,
    run: str | Path | None = None,
    split: str = "auto",
    device: str = "auto",
    batch_size: int = 256,
    tta: bool = False,
    strict: bool = False,
    label_url: str | None = None,
) -> EvalResult:
    """Score a run (default: the latest) on its test split, else its validation split (`picsift evaluate`);
    writes metrics.json, predictions.csv and report.html into the run folder. Images whose file is missing or
    no longer decodes are skipped (`result.skipped_images`). The report's mistakes link to the labelling app at
    `label_url` (default http://127.0.0.1:8765/).

    Raises RunNotFoundError, WorkspaceError, ConfigError (unknown split or device), DatasetError (no held-out
    images), MissingImagesError with `strict`.
    """
    from picsift.config import EvalConfig
    from picsift.evaluate.pipeline import run as run_evaluation

    cfg = EvalConfig(
        workspace=workspace_path(workspace),
        run=str(run) if run is not None else None,
        split=split,
        device=device,
        batch_size=batch_size,
        tta=tta,
        strict=strict,
        label_url=label_url,
    )
    return run_evaluation(cfg)


@dataclass(frozen=True)
class PredictResult:
    """One Prediction per image file, in input order (a file that cannot be read has its `error`), and what the
    folders and patterns held that is not an image (`skipped`: hidden files, other suffixes, broken links)."""

    predictions: list[Prediction]
    skipped: list[SkippedFile] = field(default_factory=list)

    def skipped_by_kind(self) -> dict[str, int]:
        """{reason kind: files}, most frequent first."""
        from picsift.data.walk import count_by_kind

        return count_by_kind(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        """The predictions and the skipped paths (with reasons) as JSON-ready data."""
        return {
            "predictions": [p.to_dict() for p in self.predictions],
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
        }


def predict(
    paths: list[str] | str,
    *,
    workspace: WorkspaceArg = None,
    run: str | Path | None = None,
    bundle: str | Path | None = None,
    top_k: int = 1,
    tta: bool = False,
    reject_unknown: bool = False,
) -> PredictResult:
    """Predict files, folders or glob patterns with a run (default: the workspace's latest) or a bundle.

    Folders are walked as `picsift import` walks them. tta: average over the run's chosen test-time views (the
    default view set, with a warning, when none were chosen); reject_unknown: label images unlike every class
    "unknown", with the rejector `picsift calibrate` fitted (ConfigError when there is none). A bundle carries
    the same settings as its run. Reads, never writes: the run folder and the bundle stay as they are.
    Raises DatasetError (a folder or pattern with no image), RunNotFoundError, WorkspaceError, ConfigError; an
    unreadable file is a Prediction with `error`, not an exception.
    """
    from picsift.data.inputs import collect_inputs
    from picsift.inference import Predictor

    found = collect_inputs([paths] if isinstance(paths, str) else list(paths))
    predictor: Predictor
    if bundle is not None:
        from picsift.deploy.bundle import load_bundle

        predictor = load_bundle(Path(bundle), tta=tta, reject_unknown=reject_unknown)
    else:
        _, folder = open_run(workspace, run)
        predictor = Predictor.from_run(folder, tta=tta, reject_unknown=reject_unknown)
    return PredictResult(predictor.predict_paths(found.paths, top_k=top_k), found.skipped)
