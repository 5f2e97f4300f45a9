"""4 TRAIN: train a run, list the model registry, compute features, compare candidate models."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, workspace_path

if TYPE_CHECKING:
    from picsift.compare import Leaderboard
    from picsift.data.available import SkippedImage
    from picsift.train.listing import RunSummary
    from picsift.train.pipeline import RunResult


def train_model(
    *, workspace: WorkspaceArg = None, settings_file: str | Path | None = None, **settings: Any
) -> RunResult:
    """Train a model on the workspace's labelled images (`picsift train`); writes a complete run folder.

    settings: TrainConfig fields (model, epochs, seed, lr, ...); a None value means "not given", so the YAML
    `settings_file` (if any), else the recipe's default, applies. With `resume` (a run id or folder) the run's own
    recorded settings apply instead of the defaults, and it continues in its own folder unless it had finished
    (`picsift.train.resume`); a given setting that contradicts the run's is a ConfigError. Raises ConfigError (unknown setting or model
    parameter, unreadable settings file), ModelNotFoundError (with close names), WeightsNotAvailableError,
    DatasetError (too few labelled images or classes), WorkspaceError, MissingImagesError with strict=True.

    Under torchrun every process calls it and trains its share (docs/train.md, "Many processes / machines"); rank 0
    alone writes the run, and every process returns its RunResult. DistributedError when the processes cannot form
    their group or one of them fails or stops answering.
    """
    from picsift import train as train_stage
    from picsift.config import TrainConfig, load_yaml_overrides

    cfg = load_yaml_overrides(TrainConfig, settings_file, workspace=workspace_path(workspace), **settings)
    if cfg.resume:  # the run's own settings, unless given explicitly (and then only those it may change)
        from picsift.config import given_settings
        from picsift.train.resume import resumed_config

        cfg = resumed_config(
            given_settings(TrainConfig, settings_file, workspace=workspace_path(workspace), **settings)
        )
    from picsift.improve.calibration import calibrate_after_training

    result = train_stage.run(cfg, calibrator=calibrate_after_training)
    from picsift.distributed import env_rank

    if (
        cfg.tta and env_rank() == 0
    ):  # choosing test-time views fits on validation data: the improve stage's work, after training
        from picsift.improve.tta import choose_for_run

        choose_for_run(result.run_dir)
    return result


def process_rank() -> int:
    """This process's rank in a torchrun run (its RANK), 0 without torchrun: the process that reports."""
    from picsift.distributed import env_rank

    return env_rank()


def is_relayed_error(error: BaseException) -> bool:
    """True for an error a torchrun process raised only because rank 0 raised it (rank 0 reports it)."""
    from picsift.distributed import is_relayed

    return is_relayed(error)


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry: `input_size` in pixels, `params_10_classes` the parameter count of a 10-class
    model (None for classical models), `pretrained` whether ImageNet weights can be had, `pretrained_offline`
    whether they are on this machine now, `weights_source` where they come from (the installed package, a
    cache, or how to get them; None without pretrained weights)."""

    name: str
    family: str
    input_size: int
    params_10_classes: int | None
    pretrained: bool
    description: str
    pretrained_offline: bool = False
    weights_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The registry entry as JSON-ready data."""
        return {
            "name": self.name,
            "family": self.family,
            "input_size": self.input_size,
            "params_10_classes": self.params_10_classes,
            "pretrained": self.pretrained,
            "pretrained_offline": self.pretrained_offline,
            "weights_source": self.weights_source,
            "description": self.description,
        }


def list_runs(*, workspace: WorkspaceArg = None) -> list[RunSummary]:
    """Every run folder of the workspace, oldest first, finished or not (`picsift runs`): id, model, date, best
    validation accuracy, epochs and status (finished | failed, resumable | failed, damaged checkpoint | failed, no
    checkpoint). Raises WorkspaceError when there is no workspace."""
    from picsift.store import Workspace
    from picsift.train.listing import list_all_runs

    ws = Workspace.open(workspace)
    try:
        return list_all_runs(ws)
    finally:
        ws.close()


def describe_models(pattern: str | None = None) -> list[ModelInfo]:
    """The model registry (`picsift models`), filtered by a glob or substring; builds each network once to
    count its parameters. (`picsift.list_models` returns the registry specs themselves.)"""
    from picsift.models import count_parameters, create_model, list_models
    from picsift.models.pretrained import available_pretrained, get_pretrained_spec

    offline = {found.name: found for found in available_pretrained()}
    rows: list[ModelInfo] = []
    for spec in list_models(pattern):
        params = None
        if spec.builder is not None:
            params = count_parameters(create_model(spec.name, num_classes=10))
        found = offline.get(spec.name) if spec.family == "transfer" else None
        if found is not None:
            source: str | None = found.source
        elif spec.family == "transfer":
            source = f"not on this machine: {get_pretrained_spec(spec.name).pip_hint}"
        elif spec.pretrained_available:
            source = f"{spec.family} download (or its local cache), or --weights PATH"
        else:
            source = None
        rows.append(
            ModelInfo(
                name=spec.name,
                family=spec.family,
                input_size=spec.data_config.input_size,
                params_10_classes=params,
                pretrained=spec.pretrained_available,
                description=spec.description,
                pretrained_offline=found is not None,
                weights_source=source,
            )
        )
    return rows


@dataclass(frozen=True)
class ExtractorInfo:
    """A feature extractor name a user can type (`hog`, `cnn:MODEL`, ...) and what it computes."""

    name: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        """The extractor's name and description."""
        return {"name": self.name, "description": self.description}


def list_extractors() -> list[ExtractorInfo]:
    """The feature extractors (`picsift features --list`)."""
    from picsift.features import list_extractors as extractors

    return [ExtractorInfo(**row) for row in extractors()]


@dataclass(frozen=True)
class FeaturesResult:
    """Features of `images` usable images, `dim` each: `computed` now, `cached` reused (counted by distinct
    image bytes); `cache_file` holds them by (extractor, image hash); `out` the .npz asked for, if any;
    `skipped` the images whose file is missing or no longer decodes; `seconds` wall time."""

    extractor: str
    description: str
    images: int
    dim: int
    computed: int
    cached: int
    seconds: float
    cache_file: Path
    out: Path | None
    skipped: list[SkippedImage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (paths as strings, seconds rounded to ms, skipped images listed)."""
        return {
            "extractor": self.extractor,
            "description": self.description,
            "images": self.images,
            "dim": self.dim,
            "computed": self.computed,
            "cached": self.cached,
            "skipped_images": [s.to_dict() for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "cache_file": str(self.cache_file),
            "out": str(self.out) if self.out else None,
        }


def extract_features(
    *, workspace: WorkspaceArg = None, extractor: str = "hog", out: str | Path | None = None, strict: bool = False
) -> FeaturesResult:
    """Compute (or reuse) the features of every usable image, cached by (extractor, image hash)
    (`picsift features`); with `out`, also write ids (N,) and features (N, D) float32 to that .npz file.

    `extractor` "auto" is the strongest available offline (a pretrained backbone when its weights are
    installed, else hog). Raises ConfigError (unknown extractor, a pretrained one without its weights: how to
    install them), RunNotFoundError (run:RUN), WorkspaceError, MissingImagesError with `strict`.
    """
    from picsift.data.available import check_strict
    from picsift.features import extract_available, get_extractor, resolve_embedding
    from picsift.features.store import FeatureStore
    from picsift.store import Workspace

    ws = Workspace.open(workspace)
    ext = get_extractor(resolve_embedding(extractor, fallback="hog").extractor, ws)
    rows = ws.catalog.images(include_duplicates=False)
    store = FeatureStore(ws.cache_dir, ext.key)
    before = set(store.get([r.sha256 for r in rows]))
    t0 = time.perf_counter()
    rows, x, skipped = extract_available(ws, rows, ext)
    check_strict(skipped, strict, "features")
    seconds = time.perf_counter() - t0
    if out is not None:
        import numpy as np

        np.savez_compressed(out, ids=np.array([r.id for r in rows]), features=x)
    hashes = {r.sha256 for r in rows}
    return FeaturesResult(
        extractor=ext.name,
        description=ext.description,
        images=len(rows),
        dim=int(x.shape[1]) if x.ndim == 2 else 0,
        computed=len(hashes - before),
        cached=len(hashes & before),
        seconds=seconds,
        cache_file=store.path,
        out=Path(out) if out is not None else None,
        skipped=skipped,
    )


def compare_models(
    *,
    workspace: WorkspaceArg = None,
    models: str | list[str] | None = None,
    time_budget_min: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> Leaderboard:
    """Train every candidate (registry names, or MODEL:FEATURES for classical models) on the same split and rank
    them by accuracy, with macro F1, train/predict time and size (`picsift compare`); the time budget in minutes
    is shared by all; `models` None: the default candidates. Writes a JSON and an HTML leaderboard. Raises ConfigError (unknown candidate),
    DatasetError, WorkspaceError; a candidate that fails is ranked last with its error."""
    from picsift.compare import DEFAULT_CANDIDATES, compare

    return compare(
        workspace,
        DEFAULT_CANDIDATES if models is None else models,
        time_budget_min=time_budget_min,
        epochs=epochs,
        seed=seed,
        device=device,
    )
