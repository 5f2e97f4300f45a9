"""Model settings (`model_params`) are read strictly for every model family, and trainers are chosen by family."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.models import get_spec, list_models
from picsift.store import Workspace
from picsift.train.standard_recipe import StandardRecipe
from picsift.train.trainers import TRAINERS, trainer_for
from support.train import catalog_workspace


@pytest.mark.parametrize(
    ("model", "param", "expected"),
    [
        ("fastcnn", "prnue=0.5", "unknown fastcnn setting 'prnue': did you mean 'prune'?"),
        ("fastcnn", "filter_lt=0.3", "did you mean 'filter_lr'?"),
        ("mobilenet_v3_small", "label_smothing=0.1", "did you mean the training setting 'label_smoothing'"),
        ("resnet18", "drop_rate=0.2", "unknown resnet18 setting 'drop_rate' (resnet18 takes no model_params)"),
        ("knn", "n_neighbours=3", "did you mean 'n_neighbors'?"),
    ],
)
def test_cli_refuses_a_misspelt_setting_before_training(
    tmp_path: Path, digits_folder: Path, model: str, param: str, expected: str
) -> None:
    ws_path = catalog_workspace(tmp_path / "ws", digits_folder)
    args = ["train", "--workspace", str(ws_path), "--model", model, "--epochs", "1", "--param", param]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())  # the console may wrap the line
    ws = Workspace.open(ws_path)
    assert not ws.runs_dir.exists() or not list(ws.runs_dir.iterdir())  # refused before a run folder was made


def test_standard_recipe_resolves_the_loops_defaults() -> None:
    adamw = StandardRecipe.from_config("resnet18", TrainConfig(model="resnet18"))
    assert (adamw.optimizer, adamw.lr, adamw.weight_decay, adamw.label_smoothing) == ("adamw", 2e-3, 0.05, 0.1)
    assert (adamw.batch_size, adamw.epochs, adamw.budget_s) == (64, 10, None)
    sgd = StandardRecipe.from_config("resnet18", TrainConfig(optimizer="sgd", pretrained=True, time_budget_min=0.5))
    assert (sgd.lr, sgd.weight_decay, sgd.epochs, sgd.budget_s) == (0.01, 5e-4, 1000, 30.0)
    given = TrainConfig(lr=0.3, weight_decay=0.0, label_smoothing=0.0, batch_size=8, epochs=3)
    assert StandardRecipe.from_config("resnet18", given) == StandardRecipe("adamw", 0.3, 0.0, 0.0, 8, 3, None)
    with pytest.raises(ConfigError, match="unknown resnet18 setting 'lr'"):
        StandardRecipe.from_config("resnet18", TrainConfig(model_params={"lr": 0.1}))


def test_every_registered_family_has_a_trainer_and_a_search_space() -> None:
    from picsift.improve.tune import SEARCH_SPACES

    families = {spec.family for spec in list_models()}
    assert families == {"fast", "transfer", "torchvision", "timm", "classical"} == set(TRAINERS) == set(SEARCH_SPACES)
    assert (
        trainer_for(get_spec("resnet18"))
        is trainer_for(get_spec("timm/resnet18"))
        is not trainer_for(get_spec("fastcnn"))
    )
