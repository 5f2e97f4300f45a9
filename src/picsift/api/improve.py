"""6 IMPROVE: hyper-parameter search, ensembles, calibration (thresholds, temperature, unknown rejection),
drift checks. Each fits what inference then reads from the run folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picsift.api._common import WorkspaceArg, run_dir, workspace_path


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


@dataclass(frozen=True)
class TuneResult:
    """A study (`storage`: its SQLite file) and the run trained with its best trial's settings: trial counts,
    `best_value` (validation accuracy), `best_params`, times in seconds, and the run's id, folder and accuracy."""

    study: str
    storage: str
    trials_total: int
    trials_complete: int
    trials_pruned: int
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    search_seconds: float
    materialise_seconds: float
    run_id: str
    run_dir: str
    run_val_acc: float | None

    def to_dict(self) -> dict[str, Any]:
        """Every field, as a dict."""
        return _fields(self)


def tune(
    *,
    workspace: WorkspaceArg = None,
    model: str = "fastcnn",
    trials: int = 10,
    time_budget_min: float | None = None,
    max_epochs: int | None = None,
    study: str | None = None,
    seed: int = 0,
    device: str = "auto",
    settings_file: str | Path | None = None,
) -> TuneResult:
    """Search hyper-parameters with Optuna (median pruning), `trials` new trials or until the time budget
    (minutes), then train the best trial as a run (`picsift tune`). A study (default tune-MODEL) resumes where
    it stopped. `settings_file`: YAML of fixed TrainConfig settings. Raises ConfigError (optuna missing, no
    completed trial, bad settings), ModelNotFoundError, DatasetError, WorkspaceError."""
    from picsift.config import TrainConfig, load_yaml_overrides
    from picsift.improve.tune import tune as run_tune

    base = load_yaml_overrides(
        TrainConfig, settings_file, workspace=workspace_path(workspace), model=model, seed=seed, device=device
    )
    summary = run_tune(base, trials=trials, time_budget_min=time_budget_min, study_name=study, max_epochs=max_epochs)
    return TuneResult(**summary)


@dataclass(frozen=True)
class EnsembleResult:
    """A new run of family "ensemble" (its run.json, plus `run_dir`): `members` (run ids), `method`, `weights`
    (one per member), `n_val` validation images, `best_val_acc` of the ensemble and `member_val_acc` of each
    member, `shared_val_split` whether all members were validated on the same images, `resized_members` the
    members of a smaller input size, which see the ensemble's `input_size` input resized rather than their own
    decode of each image."""

    run_id: str
    model: str
    family: str
    classes: list[str]
    members: list[str]
    method: str
    weights: list[float]
    n_val: int
    best_val_acc: float | None
    member_val_acc: list[float | None]
    shared_val_split: bool
    train_seconds: float
    epochs: int
    run_dir: Path
    input_size: int | None = None  # the ensemble's input side in px (the largest member's storage size)
    resized_members: list[str] = dataclasses.field(default_factory=list)  # members fed a resized copy of it

    def to_dict(self) -> dict[str, Any]:
        """Every field, as a dict, with `run_dir` as a string."""
        return {**_fields(self), "run_dir": str(self.run_dir)}


def ensemble(
    runs: list[str | Path] | None = None,
    *,
    workspace: WorkspaceArg = None,
    snapshots: str | Path | None = None,
    last: int | None = None,
    method: str = "mean",
    name: str | None = None,
) -> EnsembleResult:
    """Combine two or more runs, or (`snapshots`) one run's epoch snapshots (the `last` N, default all), into a
    new run averaging their probabilities (`picsift ensemble`); method "weighted" fits weights on validation NLL.

    Raises ConfigError (neither or both of runs and snapshots, fewer than 2 runs, unknown method, classes that
    differ), RunNotFoundError (no such run, a run without snapshots), WorkspaceError.
    """
    from picsift.errors import ConfigError
    from picsift.improve.ensemble import make_ensemble
    from picsift.improve.snapshots import make_snapshot_ensemble

    if bool(runs) == bool(snapshots):
        raise ConfigError("give either two or more RUNS or --snapshots RUN (one run trained with --snapshots N)")
    if snapshots:
        folder = make_snapshot_ensemble(run_dir(workspace, snapshots), method=method, last=last, name=name)
    else:
        folder = make_ensemble([run_dir(workspace, r) for r in runs or []], method=method, name=name)
    from picsift.runs import RunFolder

    summary = RunFolder(folder).read_record()
    return EnsembleResult(**summary, run_dir=folder)


@dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate` fitted into the run folder, as its files hold it.

    All three are stored in the run's inference spec (inference.json), which predict, evaluate, export and serve
    read. temperature: the fit without the diagram bins: `temperature`, `n` validation images, per split
    ("val", and "test" when the run has one) {nll_before, nll_after, ece_before, ece_after}, and the
    `reliability_diagram` file name. unknown: `thresholds` {confidence, knn, ...} and
    `val_rejection_rate`. thresholds: when per-class thresholds were fitted (`metric`,
    `classes`, `scales`, per split {before, after, accuracy_before, accuracy_after}), else None.
    """

    run_dir: Path
    temperature: dict[str, Any]
    unknown: dict[str, Any]
    thresholds: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The temperature fit's fields at the top level, with `run_dir` (a string), `unknown` and `thresholds`."""
        return {
            "run_dir": str(self.run_dir),
            **self.temperature,
            "unknown": self.unknown,
            "thresholds": self.thresholds,
        }


def calibrate(
    *,
    workspace: WorkspaceArg = None,
    run: str | Path | None = None,
    tta: bool = False,
    target_frr: float = 0.05,
    thresholds: str | None = None,
) -> CalibrationResult:
    """Fit what inference reads to decide (`picsift calibrate`), in this order: per-class decision thresholds
    (`thresholds`: macro-f1 | balanced-accuracy; "none" removes them; None keeps the current ones), then
    temperature scaling, then unknown rejection (share `target_frr` of known-class validation images
    rejected). The order matters: the temperature and the unknown thresholds are fitted on the probabilities
    the earlier steps adjusted. tta: choose the run's test-time views first (when it has none), then fit on the
    TTA-averaged probabilities.

    Raises ConfigError (unknown thresholds metric, checked before any fitting; target_frr outside (0, 1)),
    RunNotFoundError, WorkspaceError, DatasetError (no validation images).
    """
    from picsift.improve.calibration import calibrate as fit_temperature
    from picsift.improve.thresholds import fit_thresholds, metric_name, remove_thresholds
    from picsift.improve.unknown import check_target_frr, fit_unknown

    check_target_frr(target_frr)  # before any fitting writes to the run
    folder = run_dir(workspace, run)
    fitted: dict[str, Any] | None = None
    if thresholds == "none":
        remove_thresholds(folder)
    elif thresholds is not None:
        metric_name(thresholds)  # a typo fails before any fitting
        fitted = fit_thresholds(folder, thresholds, tta=tta)
    temperature = fit_temperature(folder, tta=tta)
    unknown = fit_unknown(folder, target_frr=target_frr)
    return CalibrationResult(
        run_dir=folder,
        temperature={k: v for k, v in temperature.items() if k != "bins"},
        unknown=unknown,
        thresholds=fitted,
    )


@dataclass(frozen=True)
class DriftResult:
    """New images vs the run's held-out training-distribution images: `embedding` {domain_auc (0.5 =
    indistinguishable), domain_auc_unmatched, mmd2}, `class_mix` {total_variation, training, predicted_new},
    `confidence` {reference_mean, new_mean, drop, new_below_reference_p10}, and a plain `verdict` ("ok" or
    "retrain") with its `message`."""

    run: str
    folder: str
    n_new: int
    n_unreadable: int
    n_reference: int
    n_reference_class_matched: int
    embedding: dict[str, float]
    class_mix: dict[str, Any]
    confidence: dict[str, float]
    verdict: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Every field, as a dict."""
        return _fields(self)


def check_drift(
    folder: str | Path, *, workspace: WorkspaceArg = None, run: str | Path | None = None, max_images: int = 2000
) -> DriftResult:
    """Is a folder of new images still like the training data? (`picsift check-drift`); samples at most
    `max_images` per side. Raises ConfigError (`max_images` not a whole number >= drift.MIN_IMAGES), DatasetError (no images in
    the folder), RunNotFoundError, WorkspaceError."""
    from picsift.config import check_number
    from picsift.improve.drift import MIN_IMAGES
    from picsift.improve.drift import check_drift as drift

    check_number(max_images, "--max-images", low=MIN_IMAGES, whole=True)
    return DriftResult(**drift(run_dir(workspace, run), folder, max_images=max_images))
