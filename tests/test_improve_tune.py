"""Optuna tuning: a study in the workspace, resumable, best trial materialised as a normal run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.improve import make_workspace, quick_config


def test_tune_two_trials_materialises_a_run_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from picsift.improve.tune import tune
    from picsift.models.artifact import load_artifact

    ws = make_workspace(tmp_path)
    summary = tune(quick_config(ws, epochs=2), trials=2, max_epochs=2)
    run_dir = Path(summary["run_dir"])
    assert (ws.root / "optuna.sqlite").exists()
    assert summary["trials_total"] == 2 and summary["trials_complete"] >= 1
    assert load_artifact(run_dir).family == "fast"
    config = json.loads((run_dir / "config.json").read_text())["train"]
    assert config["lr"] == pytest.approx(summary["best_params"]["lr"])  # the best trial's settings
    saved = json.loads((run_dir / "tune.json").read_text())
    assert len(saved["trials"]) == 2
    assert "data:image/png;base64," in (run_dir / "tune.html").read_text()
    again = tune(quick_config(ws, epochs=2), trials=1, max_epochs=2)  # same study name: resumed
    assert again["trials_total"] == 3 and again["study"] == summary["study"]


def test_every_classical_search_space_only_suggests_settings_its_model_takes() -> None:
    """A tree has no C: each classical model's space must build a classifier scikit-learn accepts."""
    import optuna

    from picsift.classical.estimators import make_classifier
    from picsift.config import TrainConfig
    from picsift.improve.tune import SEARCH_SPACES
    from picsift.models import list_models

    space = SEARCH_SPACES["classical"]
    for spec in list_models():
        if spec.family != "classical":
            continue
        for seed in range(3):
            trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
            params = space(trial, spec, TrainConfig(model=spec.name), 1)["model_params"]
            make_classifier(spec.name, params, 0)  # ConfigError for a setting the model does not take
