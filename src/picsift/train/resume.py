"""`train --resume RUN`: which run continues, with which settings, into which folder.

- Settings: a resumed run trains with the run's own recorded settings (config.json: model, image size, seed,
  optimiser, augmentation, budget or epochs, ...). A setting given again must agree with the run's, except those in
  `CHANGEABLE` (how long it trains, where, and what it does afterwards), which the new value replaces; one that
  contradicts the run (another --model, --seed, --image-size, ...) is a ConfigError naming the flag.
- Folder: a run that stopped before it finished (`picsift runs`: failed, resumable) continues in its own folder:
  its history is kept (cut back to the checkpoint's epoch) and the run ends finished. A finished run's
  checkpoint resumed for more epochs (`--epochs N`) starts a new run folder, the finished run left as it was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picsift.config import TrainConfig, to_jsonable
from picsift.errors import ConfigError, RunCorruptError
from picsift.runs import RunFolder, open_run
from picsift.store import Workspace
from picsift.train.auto import AUTO
from picsift.train.checkpoints import verify_checkpoint

# What a resumed run may change: how long it trains, on which device, and what it does afterwards. Every other
# setting shaped the model, its data, its optimiser state or its schedule, so it stays the run's own.
CHANGEABLE = frozenset(
    {
        "workspace",
        "resume",
        "epochs",
        "time_budget_min",
        "device",
        "num_workers",
        "amp",
        "channels_last",
        "early_stopping",
        "snapshots",
        "tta",
        "calibrate",
        "strict",
    }
)
_FLAGS = {"time_budget_min": "--time-budget", "run_name": "--name", "model_params": "--param"}


def flag(setting: str) -> str:
    """The command-line flag of a TrainConfig setting: `time_budget_min` -> `--time-budget`."""
    return _FLAGS.get(setting, "--" + setting.replace("_", "-"))


@dataclass(frozen=True)
class ResumePoint:
    """The run `--resume` names: its folder, its checkpoint, the epochs that checkpoint completed (None when no
    sidecar records them) and whether the run continues in its own folder (it had not finished)."""

    run: RunFolder
    checkpoint: Path
    epochs_done: int | None
    in_place: bool

    def to_dict(self) -> dict[str, Any]:
        """{"run": id, "from_epoch": epochs done, "same_folder": bool}: what run.json records."""
        return {"run": self.run.name, "from_epoch": self.epochs_done, "same_folder": self.in_place}


def find_resume_point(ws: Workspace, resume: str) -> ResumePoint:
    """The run to resume (a run id of `ws` or a run folder) with its checkpoint verified. Raises RunNotFoundError
    (no such run), ConfigError (no checkpoint; an unfinished run of another workspace), CheckpointError (damaged)."""
    run = open_run(ws, resume)
    if not run.checkpoint_path.exists():
        raise ConfigError(
            f"--resume {resume}: run {run.name} has no checkpoint.pt (it stopped before its first epoch, or its "
            "model family saves none): nothing to resume; train a new run without --resume"
        )
    epochs = verify_checkpoint(run.checkpoint_path)  # a damaged one fails here, in one line, before any decoding
    in_place = not run.has_artifact()
    if in_place and run.path.parent.resolve() != ws.runs_dir.resolve():
        raise ConfigError(
            f"--resume {resume}: run {run.name} belongs to the workspace {run.path.parent.parent}, not {ws.root}: "
            "resume it with --workspace set to its own workspace"
        )
    return ResumePoint(run, run.checkpoint_path, epochs, in_place)


def recorded_settings(run: RunFolder) -> dict[str, Any]:
    """The TrainConfig settings the run recorded in config.json (its workspace and --resume left out).
    RunNotFoundError without config.json, RunCorruptError when it holds no "train" settings."""
    doc = run.read_config().get("train")
    if not isinstance(doc, dict):
        raise RunCorruptError(f'run {run.name}\'s config.json holds no training settings ("train")')
    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"workspace", "resume"}
    return {k: v for k, v in doc.items() if k in names}


def merge_settings(run: RunFolder, given: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run trains with: the run's recorded ones, then the `given` ones (what the user set
    explicitly) that `CHANGEABLE` allows or that agree with the run's. `--model auto` means the run's model.
    Raises ConfigError naming the first given setting that contradicts the run."""
    recorded = recorded_settings(run)
    merged = dict(recorded)
    for key, value in given.items():
        if key == "model" and value == AUTO:
            continue
        if key in CHANGEABLE or key not in recorded:
            merged[key] = value
        elif to_jsonable(value) != recorded[key]:
            raise ConfigError(
                f"--resume {run.name}: {flag(key)} {to_jsonable(value)!r} contradicts the run's own "
                f"{recorded[key]!r}; leave {flag(key)} out to continue the run with its settings, or train a new "
                "run without --resume"
            )
    return merged


def non_default_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings of `cfg` that differ from TrainConfig's defaults: what a caller that built the config
    itself (not through `given_settings`) asked for."""
    default = TrainConfig()
    return {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(cfg, f.name) != getattr(default, f.name)
    }


def resumed_config(given: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of `train --resume RUN`: `given` holds the settings the user set explicitly (flags and
    settings file, `picsift.config.given_settings`) with "resume"; the run's recorded settings fill in the rest.
    Raises WorkspaceError, RunNotFoundError, ConfigError (a contradicting setting: `merge_settings`)."""
    ws = Workspace.open(given.get("workspace"))
    try:
        run = open_run(ws, given["resume"])
        return TrainConfig(**merge_settings(run, given))
    finally:
        ws.close()
