"""The standard training loop, registry, local pretrained weights, run folders and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from picsift.config import TrainConfig
from picsift.errors import ConfigError, ModelNotFoundError, WeightsNotAvailableError
from picsift.models import count_parameters, create_model, get_spec, list_models
from picsift.models.artifact import load_artifact
from picsift.runs import resolve_run
from picsift.store import Workspace
from picsift.train import run as train_run
from support.train import catalog_workspace

torch.set_num_threads(1)


def test_registry_lists_names_and_suggests_on_typos() -> None:
    names = {s.name for s in list_models()}
    assert {"fastcnn", "resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"} <= names
    assert all("net" in s.name for s in list_models("*net*"))
    with pytest.raises(ModelNotFoundError, match="did you mean resnet18"):
        get_spec("resnet81")
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'FastCNN'; did you mean fastcnn\b"):
        get_spec("FastCNN")  # a case-only typo is close too


def test_name_hints_are_case_blind_and_keep_the_known_spelling() -> None:
    from picsift.cluster.algorithms import METHODS
    from picsift.suggest import closest_names, did_you_mean

    assert closest_names("FastCNN", ["resnet18", "fastcnn", "fastcnn_wide"]) == ["fastcnn", "fastcnn_wide"]
    assert closest_names("KMEANS", list(METHODS), n=1) == ["kmeans"]
    assert did_you_mean("zzz", ["fastcnn"]) == ""
    assert did_you_mean("Lite0", ["LITE0", "lite0"]) == "; did you mean LITE0?"  # the first spelling of a name


def test_head_is_replaced_for_every_torchvision_backbone() -> None:
    for name in ("resnet18", "mobilenet_v3_small", "efficientnet_b0"):
        model = create_model(name, num_classes=7).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
        assert count_parameters(model) > 1e6


def test_local_weights_file_is_loaded_by_torchvision_and_timm(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_model("resnet18", num_classes=3, weights=str(path))
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)
    assert loaded.fc.out_features == 3

    import timm

    timm_source = timm.create_model("resnet18", num_classes=1000)
    timm_path = tmp_path / "timm_resnet18.pth"
    torch.save(timm_source.state_dict(), timm_path)
    timm_loaded = create_model("timm/resnet18", num_classes=4, weights=str(timm_path))
    assert torch.equal(timm_loaded.conv1.weight, timm_source.conv1.weight)
    assert timm_loaded.get_classifier().out_features == 4


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.pth"
    torch.save(create_model("mobilenet_v3_small", num_classes=10).state_dict(), path)
    with pytest.raises(WeightsNotAvailableError, match="right architecture"):
        create_model("resnet18", num_classes=3, weights=str(path))
    with pytest.raises(WeightsNotAvailableError, match="does not exist"):
        create_model("resnet18", num_classes=3, weights=str(tmp_path / "missing.pth"))


def test_pretrained_without_network_fails_instead_of_training_from_scratch(monkeypatch) -> None:
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    # What torchvision's weight loader meets on a machine without internet and an empty cache.
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsNotAvailableError, match="--weights PATH"):
        create_model("resnet18", num_classes=3, pretrained=True)


def test_standard_run_folder_is_complete_and_reproducible(tmp_path: Path, digits_folder: Path) -> None:
    ws_path = catalog_workspace(tmp_path / "ws", digits_folder)
    cfg = TrainConfig(workspace=ws_path, model="mobilenet_v3_small", epochs=2, image_size=32, seed=3)
    result = train_run(cfg)
    run_dir = result.run_dir
    for name in ("config.json", "env.json", "data.json", "metrics.jsonl", "run.json", "checkpoint.pt"):
        assert (run_dir / name).exists(), name
    env = json.loads((run_dir / "env.json").read_text())
    assert env["seed"] == 3 and len(env["catalog_hash"]) == 64 and "torch" in env["packages"]
    assert json.loads((run_dir / "config.json").read_text())["train"]["model"] == "mobilenet_v3_small"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    artifact = load_artifact(run_dir)
    assert artifact.classes == ["0", "1", "2"] and artifact.data_config.input_size == 32
    assert artifact.extra["label_smoothing"] == 0.1  # the effective value is recorded, not only the (unset) option
    assert (run_dir / "model" / "weights.safetensors").exists()
    # the same seed gives the same first-epoch loss
    again = train_run(cfg)
    assert again.history[0]["train_loss"] == pytest.approx(result.history[0]["train_loss"], rel=1e-4)


def test_resume_continues_from_the_checkpoint(tmp_path: Path, digits_folder: Path) -> None:
    ws_path = catalog_workspace(tmp_path / "ws", digits_folder)
    first = train_run(TrainConfig(workspace=ws_path, model="mobilenet_v3_small", epochs=1, image_size=32))
    with pytest.raises(ConfigError, match="more with --epochs"):
        train_run(
            TrainConfig(workspace=ws_path, model="mobilenet_v3_small", epochs=1, image_size=32, resume=first.run_id)
        )
    resumed = train_run(
        TrainConfig(workspace=ws_path, model="mobilenet_v3_small", epochs=3, image_size=32, resume=first.run_id)
    )
    assert [h["epoch"] for h in resumed.history] == [2, 3]
    assert resolve_run(Workspace.open(ws_path), None) == resumed.run_dir


def test_time_budget_ends_the_standard_loop(tmp_path: Path, digits_folder: Path) -> None:
    ws_path = catalog_workspace(tmp_path / "ws", digits_folder)
    result = train_run(TrainConfig(workspace=ws_path, model="mobilenet_v3_small", time_budget_min=0.05, image_size=32))
    assert 1 <= len(result.history) < 1000
    assert sum(h["epoch_s"] for h in result.history) < 0.05 * 60 * 3


def test_any_timm_architecture_resolves_by_prefix() -> None:
    spec = get_spec("timm/resnet10t")
    assert spec.family == "timm"
    assert create_model("timm/resnet10t", num_classes=5).eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(ModelNotFoundError):
        get_spec("timm/no_such_net")


def test_cli_reads_yaml_settings_and_params(tmp_path: Path, digits_folder: Path) -> None:
    from typer.testing import CliRunner

    from picsift.cli import build_app

    ws_path = catalog_workspace(tmp_path / "ws", digits_folder)
    settings = tmp_path / "train.yaml"
    settings.write_text("model: logistic\nfeatures: color-hist\nseed: 7\n")
    runner = CliRunner()
    args = ["train", "--workspace", str(ws_path), "--config", str(settings), "--param", "C=0.5", "--json"]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    saved = json.loads((Path(out["run_dir"]) / "config.json").read_text())["train"]
    assert saved["model"] == "logistic" and saved["seed"] == 7 and saved["model_params"] == {"C": 0.5}
    bad = runner.invoke(build_app(), ["train", "--workspace", str(ws_path), "--param", "C"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
