"""The run folder `runs/<id>/`: the one type that knows its files, and reads and writes them.

Layout (every name below is private to this module; everything else asks a RunFolder):

    config.json        the resolved training config (or how an ensemble was made)
    env.json           seed, catalog hash, workspace, Python/torch/package versions
    data.json          classes and the ids of the train / val / test images
    metrics.jsonl      one JSON line per epoch (the history)
    run.json           the run record: model, classes, counts, best val accuracy, seconds
    model/             the model artifact (model.json + weights; see picsift.models.artifact)
    checkpoint.pt      the last epoch's training state, for --resume
    snapshots/         the last N epochs' weights (train --snapshots N)
    inference.json     the inference spec: temperature, class scales, TTA views, unknown rejection
    unknown_bank.npz   the feature bank unknown rejection compares images to
    calibration.png    the reliability diagram of the last calibration
    metrics.json, predictions.csv, report.html      written by `picsift evaluate`
    tune.json, tune.html                             written by `picsift tune` for the run it trained last

Older runs kept the inference settings in calibration.json, thresholds.json, tta.json and unknown.json;
`read_legacy_inference` reads those (never writes them) so such runs keep working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picsift import jsonio
from picsift.atomic import atomic_path
from picsift.errors import RunCorruptError, RunNotFoundError

ARTIFACT_DIR = "model"  # the artifact's folder inside a run folder (and inside a bundle)
ARTIFACT_META = "model.json"  # the artifact's description inside ARTIFACT_DIR

_CONFIG = "config.json"
_ENV = "env.json"
_DATA = "data.json"
_HISTORY = "metrics.jsonl"
_RECORD = "run.json"
_CHECKPOINT = "checkpoint.pt"
_SNAPSHOTS = "snapshots"
_INFERENCE = "inference.json"
_UNKNOWN_BANK = "unknown_bank.npz"
_CALIBRATION_PLOT = "calibration.png"
_METRICS = "metrics.json"
_PREDICTIONS = "predictions.csv"
_REPORT = "report.html"
_TUNING = "tune.json"
_TUNING_REPORT = "tune.html"
# Read-only: where runs made before inference.json kept each inference setting.
_LEGACY_INFERENCE = {
    "calibration": "calibration.json",
    "thresholds": "thresholds.json",
    "tta": "tta.json",
    "unknown": "unknown.json",
}


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically (a temporary file renamed over `path`): the one JSON writer
    of run folders, so a crash never leaves half a file."""
    jsonio.write_json(path, obj, default=str)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`. RunNotFoundError when it is missing, RunCorruptError when it is unreadable
    or not an object; `what` says which file of which run, for the message."""
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise RunNotFoundError(f"{path.parent} is not a complete run folder: {path.name} is missing") from e
    except OSError as e:
        raise RunCorruptError(f"cannot read {what} {path}: {e}") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise RunCorruptError(f"{what} {path} is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise RunCorruptError(f"{what} {path} must hold a JSON object, found {type(doc).__name__}")
    return doc


@dataclass(frozen=True)
class RunFolder:
    """A run folder on disk. Reading a missing file raises RunNotFoundError; a corrupt one RunCorruptError."""

    path: Path

    @property
    def name(self) -> str:
        """The run id: the folder's name."""
        return self.path.name

    def _read(self, name: str, what: str) -> dict[str, Any]:
        return read_json(self.path / name, f"run {self.name}'s {what}")

    def _read_optional(self, name: str, what: str) -> dict[str, Any] | None:
        return self._read(name, what) if (self.path / name).exists() else None

    def holds_run_files(self) -> bool:
        """True when the folder holds at least one file a run writes (config, record, data split, history,
        checkpoint, model artifact): a run folder, complete or damaged, rather than any folder at all."""
        names = (_CONFIG, _RECORD, _DATA, _HISTORY, _CHECKPOINT, _ENV, _INFERENCE, f"{ARTIFACT_DIR}/{ARTIFACT_META}")
        try:
            return self.path.is_dir() and any((self.path / name).is_file() for name in names)
        except (OSError, ValueError):  # a name no folder can have (too long, a NUL character)
            return False

    # ---- what training records -------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """The resolved training config (config.json). RunNotFoundError when missing, RunCorruptError when
        unreadable."""
        return self._read(_CONFIG, "config")

    def write_config(self, doc: dict[str, Any]) -> None:
        """Write the resolved training config (config.json), atomically."""
        write_json(self.path / _CONFIG, doc)

    def read_env(self) -> dict[str, Any]:
        """Seed, catalog hash, workspace root and package versions of the run."""
        return self._read(_ENV, "environment record")

    def read_env_if_any(self) -> dict[str, Any]:
        """env.json, or {} for a run folder without one."""
        return self._read_optional(_ENV, "environment record") or {}

    def write_env(self, doc: dict[str, Any]) -> None:
        """Write the environment record (env.json), atomically."""
        write_json(self.path / _ENV, doc)

    def read_data_split(self) -> dict[str, Any]:
        """{"classes": [...], "train_ids": [...], "val_ids": [...], "test_ids": [...], ...}."""
        return self._read(_DATA, "data split")

    def has_data_split(self) -> bool:
        """True when the run folder holds its data split (data.json)."""
        return (self.path / _DATA).is_file()

    def write_data_split(self, doc: dict[str, Any]) -> None:
        """Write the data split (data.json): classes and the train / val / test image ids, atomically."""
        write_json(self.path / _DATA, doc)

    def read_record(self) -> dict[str, Any]:
        """The run record (run.json): model, family, classes, counts, best val accuracy, seconds."""
        return self._read(_RECORD, "run record")

    def read_record_if_any(self) -> dict[str, Any]:
        """The run record (run.json), or {} for a run folder without one. RunCorruptError when unreadable."""
        return self._read_optional(_RECORD, "run record") or {}

    def write_record(self, doc: dict[str, Any]) -> None:
        """Write the run record (run.json), atomically."""
        write_json(self.path / _RECORD, doc)

    @property
    def history_path(self) -> Path:
        """metrics.jsonl: one JSON object per epoch, appended while training (see MetricsLog)."""
        return self.path / _HISTORY

    def read_history(self) -> list[dict[str, Any]]:
        """The per-epoch rows training logged ([] when there are none). A last line cut short (a kill while it
        was appended) is left out; any other line that is not JSON is a RunCorruptError."""
        path = self.history_path
        if not path.exists():
            return []
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                if i == len(lines) - 1:
                    break
                raise RunCorruptError(f"run {self.name}'s history {path} holds a line that is not JSON ({e})") from e
        return rows

    def trim_history(self, epochs: int) -> None:
        """Keep the first `epochs` rows of the history, atomically: a run resumed from the checkpoint of that
        epoch drops the rows of epochs logged after it (a kill between an epoch's row and its checkpoint)."""
        rows = self.read_history()
        if len(rows) <= epochs:
            return
        with atomic_path(self.history_path) as tmp:
            tmp.write_text("".join(jsonio.dumps(row, default=float) + "\n" for row in rows[:epochs]))

    def history_log(self) -> MetricsLog:
        """A MetricsLog that appends epoch rows to this run's metrics.jsonl."""
        return MetricsLog(self.history_path)

    # ---- the model ---------------------------------------------------------------------------------
    @property
    def artifact_dir(self) -> Path:
        """The model artifact's folder (model/) inside the run folder."""
        return self.path / ARTIFACT_DIR

    def has_artifact(self) -> bool:
        """True for a completed run: its model artifact was saved."""
        return (self.artifact_dir / ARTIFACT_META).is_file()

    @property
    def checkpoint_path(self) -> Path:
        """checkpoint.pt: the last epoch's training state, for --resume."""
        return self.path / _CHECKPOINT

    @property
    def snapshots_dir(self) -> Path:
        """snapshots/: the last N epochs' weights (train --snapshots N)."""
        return self.path / _SNAPSHOTS

    # ---- inference settings (fitted by picsift.improve, read by picsift.inference) -----------------
    def read_inference(self) -> dict[str, Any] | None:
        """The stored inference spec document, or None when the run has none (see picsift.inference.spec)."""
        return self._read_optional(_INFERENCE, "inference spec")

    def write_inference(self, doc: dict[str, Any]) -> None:
        """Write the inference spec document (inference.json), atomically."""
        write_json(self.path / _INFERENCE, doc)

    def read_legacy_inference(self) -> dict[str, dict[str, Any]]:
        """{"calibration" | "thresholds" | "tta" | "unknown": document} for the settings files of runs made
        before inference.json, those present only. Read-only: nothing writes these files any more."""
        out: dict[str, dict[str, Any]] = {}
        for kind, name in _LEGACY_INFERENCE.items():
            doc = self._read_optional(name, f"{kind} file")
            if doc is not None:
                out[kind] = doc
        return out

    @property
    def unknown_bank_path(self) -> Path:
        """unknown_bank.npz: the feature bank unknown rejection compares images to."""
        return self.path / _UNKNOWN_BANK

    @property
    def calibration_plot_path(self) -> Path:
        """calibration.png: the reliability diagram of the last calibration."""
        return self.path / _CALIBRATION_PLOT

    # ---- evaluation outputs ------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        """metrics.json: what `picsift evaluate` wrote."""
        return self.path / _METRICS

    def read_metrics(self) -> dict[str, Any]:
        """What `picsift evaluate` wrote (metrics.json)."""
        return self._read(_METRICS, "evaluation metrics")

    def write_metrics(self, doc: dict[str, Any]) -> None:
        """Write the evaluation metrics (metrics.json), atomically."""
        write_json(self.metrics_path, doc)

    @property
    def predictions_path(self) -> Path:
        """predictions.csv: the per-image predictions `picsift evaluate` wrote."""
        return self.path / _PREDICTIONS

    @property
    def report_path(self) -> Path:
        """report.html: the evaluation report `picsift evaluate` wrote."""
        return self.path / _REPORT

    # ---- tuning (the study that picked this run's settings) ---------------------------------------
    def write_tuning(self, doc: dict[str, Any]) -> None:
        """Write the tuning study that picked this run's settings (tune.json), atomically."""
        write_json(self.path / _TUNING, doc)

    @property
    def tuning_report_path(self) -> Path:
        """tune.html: the tuning study's report."""
        return self.path / _TUNING_REPORT


class MetricsLog:
    """Appends one JSON line per epoch to a run's history (flushed, so a crash keeps what was done)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        jsonio.append_json_line(self.path, row, default=float)
