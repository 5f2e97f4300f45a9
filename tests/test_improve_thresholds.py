"""Per-class decision thresholds: fitted on validation data, applied by predict, evaluate and bundles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsift.improve.thresholds import apply_class_scales
from picsift.inference import read_spec
from picsift.runs import RunFolder
from support.improve import make_workspace, quick_config


@pytest.fixture(scope="module")
def long_tailed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from picsift import train

    # Long-tailed: 60 / 60 / 10 images; a short run under-predicts the rare class.
    ws = make_workspace(tmp_path_factory.mktemp("lt"), classes=3, per_class=60, skip={2: 10})
    return train.run(quick_config(ws, epochs=2)).run_dir


def macro_f1(y: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, probs.argmax(1), average="macro", labels=[0, 1, 2], zero_division=0))


def test_apply_class_scales_is_a_prior_shift() -> None:
    p = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]], dtype=np.float32)
    q = apply_class_scales(p, np.array([1.0, 3.0, 1.0]))
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
    assert q.argmax(1).tolist() == [1, 2]  # 0.3 * 3 > 0.6
    np.testing.assert_allclose(apply_class_scales(p, None), p)


def test_thresholds_do_not_lower_validation_macro_f1_and_predictor_applies_them(long_tailed_run: Path) -> None:
    from picsift.config import EvalConfig
    from picsift.evaluate import pipeline
    from picsift.improve.rundata import split_data
    from picsift.improve.thresholds import fit_thresholds
    from picsift.inference import Predictor

    run_dir = long_tailed_run
    val = split_data(run_dir, "val")
    before = macro_f1(val.y, Predictor.from_run(run_dir).predict_arrays(val.x))
    result = fit_thresholds(run_dir, "macro-f1")
    spec = read_spec(RunFolder(run_dir))
    doc = spec.fits["thresholds"]
    assert spec.class_scales == pytest.approx(doc["scales"])
    assert doc["metric"] == "macro_f1" and len(doc["scales"]) == 3 and doc["classes"] == ["0", "1", "2"]
    assert result["val"]["before"] == pytest.approx(before)
    assert result["val"]["after"] >= result["val"]["before"]
    predictor = Predictor.from_run(run_dir)
    assert predictor.class_scales is not None
    probs = predictor.predict_arrays(val.x)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert macro_f1(val.y, probs) == pytest.approx(result["val"]["after"])
    # evaluate scores what the predictor decides
    ev = pipeline.run(EvalConfig(run=str(run_dir), split="val", device="cpu"))
    assert ev.metrics["accuracy"] == pytest.approx(result["val"]["accuracy_after"])
    assert ev.metrics["class_scales"] == pytest.approx(doc["scales"])
    # the decision does not depend on a later temperature
    hot = predictor.with_spec(predictor.spec.replace(temperature=2.5))
    assert (hot.predict_arrays(val.x).argmax(1) == probs.argmax(1)).all()


def test_cli_calibrate_thresholds_and_bundle_parity(long_tailed_run: Path, tmp_path: Path) -> None:
    from picsift.cli import build_app
    from picsift.deploy.bundle import BundlePredictor
    from picsift.deploy.export import export
    from picsift.improve.rundata import split_data
    from picsift.inference import Predictor

    runner = CliRunner()
    app = build_app()
    bad = runner.invoke(app, ["calibrate", "--run", str(long_tailed_run), "--thresholds", "f1"])
    assert bad.exit_code == 2 and "macro-f1" in bad.output
    out = runner.invoke(
        app, ["calibrate", "--run", str(long_tailed_run), "--thresholds", "balanced-accuracy", "--json"]
    )
    assert out.exit_code == 0, out.output
    fitted = json.loads(out.stdout)["thresholds"]
    assert fitted["metric"] == "balanced_accuracy" and fitted["val"]["after"] >= fitted["val"]["before"]

    test = split_data(long_tailed_run, "test")
    reference = Predictor.from_run(long_tailed_run).predict_arrays(test.x)  # scales and temperature
    bundle = export(long_tailed_run, tmp_path / "bundle", samples=8)
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["class_scales"] == pytest.approx(fitted["scales"]) and meta["temperature"]
    for runtime in ("onnx", "torch"):
        served = BundlePredictor.load(bundle, runtime=runtime).predict_arrays(test.x)
        np.testing.assert_allclose(served, reference, atol=2e-3)
        assert (served.argmax(1) == reference.argmax(1)).all()

    removed = runner.invoke(app, ["calibrate", "--run", str(long_tailed_run), "--thresholds", "none", "--json"])
    assert removed.exit_code == 0, removed.output
    spec = read_spec(RunFolder(long_tailed_run))
    assert spec.class_scales is None and "thresholds" not in spec.fits
    assert Predictor.from_run(long_tailed_run).class_scales is None


def test_scales_raise_macro_f1_when_the_rare_class_is_under_predicted() -> None:
    from picsift.improve.thresholds import fit_class_scales

    # 200 / 200 / 20 images; the model gives the rare class only 0.4 on its own images, so argmax never picks it.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [200, 200, 20])
    probs = np.full((len(y), 3), 0.05)
    probs[np.arange(len(y)), y] = 0.9
    rare = y == 2
    probs[rare] = [0.45, 0.15, 0.4]
    probs += rng.uniform(0, 0.02, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    scales, before, after = fit_class_scales(probs, y, "macro_f1")
    assert after > before + 0.2 and scales[2] > scales[0]
    assert macro_f1(y, apply_class_scales(probs, scales)) == pytest.approx(after)


def test_threshold_warnings_name_a_small_validation_split_and_a_worse_test_split() -> None:
    from picsift.improve.thresholds import MIN_VAL_PER_CLASS, threshold_warnings

    fitted = {"n": 32, "classes": list("abcdefghij"), "metric": "macro_f1"}
    fitted["test"] = {"n": 320, "before": 0.6348, "after": 0.5669}
    assert threshold_warnings(fitted) == [
        f"the scales were fitted on 32 validation images (3 per class, under {MIN_VAL_PER_CLASS}): they may fit noise",
        "on the 320 test images they lower macro_f1 from 0.6348 to 0.5669: `picsift calibrate --thresholds none` "
        "removes them",
    ]
    fitted = {
        "n": 900,
        "classes": ["a", "b", "c"],
        "metric": "macro_f1",
        "test": {"n": 90, "before": 0.5, "after": 0.6},
    }
    assert threshold_warnings(fitted) == []
