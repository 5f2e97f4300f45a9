"""5 EVALUATE: score a run on held-out images, and predict new ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, open_run, workspace_path

if TYPE_CHECKING:
    from picsift.data.walk import SkippedFile
    from picsift.deploy.batch import BatchSummary
    from picsift.evaluate.pipeline import EvalResult
    from picsift.inference import Prediction, Predictor


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

    Folders are walked as `picsift import` walks them; so are prefixes in object storage (`s3://bucket/new/`),
    and an object URL is read where it is (`picsift.data.storage`). `bundle` may be the URL `picsift export
    --out` uploaded it to. tta: average over the run's chosen test-time views (the
    default view set, with a warning, when none were chosen); reject_unknown: label images unlike every class
    "unknown", with the rejector `picsift calibrate` fitted (ConfigError when there is none). A bundle carries
    the same settings as its run. Reads, never writes: the run folder and the bundle stay as they are.
    Raises DatasetError (a folder or pattern with no image), RunNotFoundError, WorkspaceError, ConfigError (a
    top_k that is not a whole number >= 1; it is capped at the number of classes); an unreadable file is a Prediction with `error`, not an exception.
    """
    from picsift.config import check_number
    from picsift.data.inputs import collect_inputs
    from picsift.data.storage import is_remote
    from picsift.inference import Predictor

    check_number(top_k, "--top-k", low=1, whole=True)
    found = collect_inputs([paths] if isinstance(paths, str) else list(paths))
    predictor: Predictor
    if bundle is not None:
        from picsift.deploy.bundle import load_bundle

        where = bundle if isinstance(bundle, str) and is_remote(bundle) else Path(bundle)  # a URL: fetched once
        predictor = load_bundle(where, tta=tta, reject_unknown=reject_unknown)
    else:
        _, folder = open_run(workspace, run)
        predictor = Predictor.from_run(folder, tta=tta, reject_unknown=reject_unknown)
    return PredictResult(predictor.predict_paths(found.paths, top_k=top_k), found.skipped)


def _model_fingerprint(predictor: Predictor, bundle: Path | None, run: Path | None) -> str:
    """A digest of what the predictor loaded: every file of a bundle; a run's model files, inference spec and,
    with unknown rejection, its feature bank."""
    import hashlib
    import json

    from picsift.deploy.batch import folder_digest

    if bundle is not None:
        return folder_digest([f for f in bundle.rglob("*") if f.is_file()], bundle)
    from picsift.runs import RunFolder

    folder = RunFolder(Path(str(run)))
    files = [f for f in folder.artifact_dir.rglob("*") if f.is_file()]
    if predictor.rejector is not None and folder.unknown_bank_path.is_file():
        files.append(folder.unknown_bank_path)
    spec = {k: v for k, v in predictor.spec.to_dict().items() if k != "fits"}
    text = folder_digest(files, folder.path) + json.dumps(spec, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def predict_to_folder(
    sources: list[str] | str | None = None,
    *,
    out: str | Path,
    files_from: list[str | Path] | None = None,
    workspace: WorkspaceArg = None,
    run: str | Path | None = None,
    bundle: str | Path | None = None,
    workers: int | None = None,
    format: str = "csv",
    shard_size: int = 10_000,
    batch_size: int = 64,
    top_k: int = 1,
    tta: bool = False,
    reject_unknown: bool = False,
    threads: int | None = None,
    overwrite: bool = False,
) -> BatchSummary:
    """Predict any number of images into `out` as shards of `shard_size` rows (part-00000.csv or .parquet) with
    a manifest.json, in bounded memory: the inputs are enumerated lazily (files, folders, glob patterns, and
    list files of one path a line in `files_from`), decoded in `workers` processes (0: this one; None: the cores less one, 1 to 4) and predicted
    `batch_size` at a time with a bundle (ONNX Runtime when it has an ONNX model) or a run (default: the
    workspace's latest). Every shard is written whole or not at all; running the same call again after a kill
    writes only the shards missing. A file that cannot be read is a row with its error. tta, reject_unknown,
    top_k: as `predict`; threads: the model's intra-op threads (None: the runtime's default, one per core).

    Raises ConfigError (a bad setting; `out` holds predictions of other inputs or settings, unless
    `overwrite`, which replaces them), DatasetError (no inputs, a folder or pattern without images, inputs
    changing while predicted), RunNotFoundError, WorkspaceError, OSError from the disk.
    """
    from picsift.config import check_number, check_optional
    from picsift.deploy.batch import FORMATS, BatchJob
    from picsift.deploy.batch import predict_to_folder as run_job
    from picsift.errors import ConfigError
    from picsift.inference import Predictor

    if workers is None:
        import os

        workers = max(1, min(4, (os.cpu_count() or 2) - 1))
    items = [sources] if isinstance(sources, str) else list(sources or [])
    lists = list(files_from or [])
    if not items and not lists:
        raise ConfigError("nothing to predict: give image files, folders or patterns, or --files-from FILE")
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    check_number(shard_size, "--shard-size", low=1, high=100_000_000, whole=True)
    check_number(batch_size, "--batch-size", low=1, high=65536, whole=True)
    check_number(workers, "--workers", low=0, high=1024, whole=True)
    check_number(top_k, "--top-k", low=1, whole=True)
    check_optional(threads, "--threads", low=1, high=1024, whole=True)
    predictor: Predictor
    bundle_dir = run_folder = None
    if bundle is not None:
        from picsift.data.storage import is_remote
        from picsift.deploy.bundle import BundlePredictor, fetch_bundle

        # a URL: fetched once into the bundle cache (checked against its upload manifest)
        bundle_dir = fetch_bundle(bundle) if isinstance(bundle, str) and is_remote(bundle) else Path(bundle).resolve()
        predictor = BundlePredictor.load(bundle_dir, threads=threads, tta=tta, reject_unknown=reject_unknown)
    else:
        _, run_folder = open_run(workspace, run)
        if threads:
            import torch

            torch.set_num_threads(threads)
        predictor = Predictor.from_run(run_folder, tta=tta, reject_unknown=reject_unknown)
    model = {
        "fingerprint": _model_fingerprint(predictor, bundle_dir, run_folder),
        "source": str(bundle_dir or Path(str(run_folder)).resolve()),
    }
    job = BatchJob(items, lists, Path(out), format, shard_size, batch_size, workers, top_k)
    return run_job(predictor, job, model=model, overwrite=overwrite)
