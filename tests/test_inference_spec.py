"""The inference spec: what picsift.improve fits and every predictor applies, stored with the run and its bundle.

Predicting reads it and writes nothing: `picsift predict --tta --reject-unknown`, api.predict, bundles and the
server leave the run folder byte-identical. A bundle applies the same TTA and unknown rejection as its run.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.data.hashing import sha256_file
from picsift.errors import ConfigError, RunCorruptError, RunError, RunNotFoundError
from picsift.inference import InferenceSpec, Predictor, UnknownRule, ViewSet, read_spec, write_spec
from picsift.runs import RunFolder
from support.deploy import LiveServer
from support.improve import make_workspace, quick_config


@dataclass
class Setup:
    ws: Path
    run: Path  # calibrated with --tta --thresholds: TTA views, class scales, temperature, unknown rejection
    plain: Path  # the same model, never calibrated
    images: Path
    noise: Path


def tree(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    return {str(f.relative_to(folder)): sha256_file(f) for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    from picsift import train

    root = tmp_path_factory.mktemp("spec")
    ws = make_workspace(root, classes=3, per_class=30)
    run_dir = train.run(quick_config(ws)).run_dir
    plain = run_dir.with_name(run_dir.name + "-plain")
    shutil.copytree(run_dir, plain)
    noise = root / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(noise / f"{i}.png")
    r = CliRunner().invoke(build_app(), ["calibrate", "--run", str(run_dir), "--tta", "--thresholds", "macro-f1"])
    assert r.exit_code == 0, r.output
    return Setup(ws.root, run_dir, plain, root / "images", noise)


def test_calibrate_stores_every_setting_in_the_spec(setup: Setup) -> None:
    spec = read_spec(RunFolder(setup.run))
    assert spec.tta_views and spec.tta_views[0] == "identity"
    assert spec.temperature is not None and spec.temperature > 0
    assert spec.class_scales is not None and len(spec.class_scales) == 3
    assert spec.unknown is not None and spec.unknown.k == 10
    assert set(spec.fits) == {"tta", "thresholds", "calibration", "unknown"}
    assert RunFolder(setup.run).unknown_bank_path.is_file()
    names = {p.name for p in setup.run.iterdir()}
    assert not names & {"calibration.json", "thresholds.json", "tta.json", "unknown.json"}


def test_predicting_leaves_the_run_folder_byte_identical(setup: Setup, tmp_path: Path) -> None:
    from picsift.api import predict
    from picsift.deploy.export import export
    from picsift.deploy.server import ServerSettings, create_app

    before, before_plain = tree(setup.run), tree(setup.plain)
    app, runner = build_app(), CliRunner()
    for args in (["--tta"], ["--reject-unknown"], ["--tta", "--reject-unknown"]):
        r = runner.invoke(app, ["predict", str(setup.images / "1"), str(setup.noise), "--run", str(setup.run), *args])
        assert r.exit_code == 0, r.output
    rows = predict([str(setup.noise)], run=setup.run, tta=True, reject_unknown=True).predictions
    assert len(rows) == 8 and any(p.rejected for p in rows)
    r = runner.invoke(app, ["predict", str(setup.noise), "--run", str(setup.plain), "--tta", "--json"])
    assert r.exit_code == 0, r.output
    bundle = export(setup.run, tmp_path / "bundle", samples=8)
    assert predict([str(setup.noise)], bundle=bundle, tta=True, reject_unknown=True).predictions
    png = next((setup.images / "1").glob("*.png")).read_bytes()
    settings = ServerSettings(bundle=bundle, workspace=tmp_path / "served")
    with LiveServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.post("/v1/predict", files={"file": ("x.png", png)}).status_code == 200
    assert tree(setup.run) == before and tree(setup.plain) == before_plain


def test_tta_without_chosen_views_uses_the_default_set_and_says_so(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="picsift.inference"):
        predictor = Predictor.from_run(setup.plain, tta=True)
    assert predictor.tta_views == ["identity", "hflip"]
    assert "no chosen test-time views" in caplog.text and "picsift calibrate --tta" in caplog.text
    assert not RunFolder(setup.plain).read_inference()


def test_reject_unknown_without_a_fitted_rejector_is_a_clear_error(setup: Setup) -> None:
    from picsift.api import predict

    before = tree(setup.plain)
    r = CliRunner().invoke(build_app(), ["predict", str(setup.noise), "--run", str(setup.plain), "--reject-unknown"])
    assert r.exit_code == 2
    assert "has no fitted unknown rejection" in r.stderr and "picsift calibrate --run" in r.stderr
    with pytest.raises(ConfigError, match="picsift calibrate"):
        predict([str(setup.noise)], run=setup.plain, reject_unknown=True)
    assert tree(setup.plain) == before


def test_a_bundle_applies_the_runs_tta_and_unknown_rejection(setup: Setup, tmp_path: Path) -> None:
    from picsift.api import predict
    from picsift.deploy.bundle import BundlePredictor
    from picsift.deploy.export import export
    from picsift.improve.rundata import split_data

    bundle = export(setup.run, tmp_path / "bundle", samples=8)
    meta = json.loads((bundle / "bundle.json").read_text())
    spec = read_spec(RunFolder(setup.run))
    assert InferenceSpec.from_dict(meta["inference"]) == spec.replace(fits={})
    assert (bundle / "unknown_bank.npz").is_file()
    files = [str(p) for p in sorted((setup.images / "2").glob("*.png"))[:6]] + [str(setup.noise)]
    by_run = predict(files, run=setup.run, tta=True, reject_unknown=True, top_k=2).predictions
    by_bundle = predict(files, bundle=bundle, tta=True, reject_unknown=True, top_k=2).predictions
    assert [p.to_dict()["label"] for p in by_bundle] == [p.to_dict()["label"] for p in by_run]
    assert [p.rejected for p in by_bundle] == [p.rejected for p in by_run] and any(p.rejected for p in by_run)
    for a, b in zip(by_bundle, by_run, strict=True):
        assert [c for c, _ in a.top] == [c for c, _ in b.top]
        np.testing.assert_allclose([v for _, v in a.top], [v for _, v in b.top], atol=1e-5)
    # Without the flags the bundle does not apply them: the flags are what switch them on.
    assert not any(p.rejected for p in predict(files, bundle=bundle).predictions)
    # The ONNX runtime averages the same views; rejection needs features the ONNX graph does not give.
    x = split_data(setup.run, "test").x
    onnx = BundlePredictor.load(bundle, runtime="onnx", tta=True)
    assert onnx.runtime.name == "onnx" and onnx.tta_views == list(spec.tta_views or ())
    reference = Predictor.from_run(setup.run, tta=True).predict_arrays(x)
    np.testing.assert_allclose(onnx.predict_arrays(x), reference, atol=2e-3)
    with pytest.raises(ConfigError, match="torch runtime"):
        BundlePredictor.load(bundle, runtime="onnx", reject_unknown=True)


def test_spec_round_trip_and_typed_errors(tmp_path: Path) -> None:
    spec = InferenceSpec(
        temperature=1.5,
        class_scales=(1.0, 2.5, 0.5),
        tta_views=("identity", "hflip", "shift:1:0"),
        unknown=UnknownRule(k=5, target_frr=0.05, confidence_threshold=0.4, knn_threshold=-0.9),
        fits={"calibration": {"n": 12}},
    )
    assert InferenceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    run = RunFolder(tmp_path)
    assert read_spec(run) == InferenceSpec()  # no spec, no older files: nothing applied
    write_spec(run, spec)
    back = read_spec(run)
    assert back == spec and back.fits == {"calibration": {"n": 12}}
    with pytest.raises(RunCorruptError, match="did you mean 'temperature'"):
        InferenceSpec.from_dict({"temprature": 2.0})
    with pytest.raises(RunCorruptError, match="temperature must be a positive number"):
        InferenceSpec.from_dict({"temperature": -1.0})
    (tmp_path / "inference.json").write_text("{not json")
    with pytest.raises(RunCorruptError, match="not valid JSON") as info:
        read_spec(run)
    assert isinstance(info.value, RunError) and not isinstance(info.value, RunNotFoundError)


def test_older_runs_settings_files_are_read_and_never_written(setup: Setup, tmp_path: Path) -> None:
    from picsift.improve.rundata import split_data

    legacy = setup.plain.with_name(setup.plain.name + "-legacy")
    shutil.copytree(setup.plain, legacy)
    (legacy / "calibration.json").write_text(json.dumps({"method": "temperature", "temperature": 2.0}))
    (legacy / "thresholds.json").write_text(json.dumps({"scales": [1.0, 3.0, 1.0], "metric": "macro_f1"}))
    (legacy / "tta.json").write_text(json.dumps({"views": ["identity", "hflip"], "val": None}))
    before = tree(legacy)
    spec = read_spec(RunFolder(legacy))
    assert (spec.temperature, spec.class_scales, spec.tta_views) == (2.0, (1.0, 3.0, 1.0), ("identity", "hflip"))
    x = split_data(legacy, "test").x
    old = Predictor.from_run(legacy, tta=True).predict_arrays(x)
    expected = (
        Predictor.from_run(setup.plain)
        .with_spec(InferenceSpec(temperature=2.0, class_scales=(1.0, 3.0, 1.0)))
        .with_views(ViewSet.equal("chosen", ["identity", "hflip"]))
        .predict_arrays(x)
    )
    np.testing.assert_allclose(old, expected, atol=1e-6)
    assert tree(legacy) == before  # read only: no inference.json appears
    shutil.rmtree(legacy)
