"""Export: ONNX parity with PyTorch, bundle predictions equal run predictions, int8, classical, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsift.deploy import export as export_mod
from picsift.deploy.bundle import BundlePredictor
from picsift.deploy.export import ExportError, export
from picsift.inference import Predictor
from picsift.models.registry import DataConfig
from support.deploy import make_workspace, train_run


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("export"))
    return train_run(ws, "fastcnn")


def _image_files(run_dir: Path) -> list[str]:
    images = run_dir.parents[2] / "images"
    return sorted(str(p) for p in images.rglob("*.png"))[::5]


def test_fastcnn_bundle_matches_run(fast_run: Path, tmp_path: Path) -> None:
    bundle = export(fast_run, tmp_path / "bundle")
    meta = json.loads((bundle / "bundle.json").read_text())
    parity = meta["parity"]
    assert parity["passed"] and parity["top1_agreement"] == 1.0 and parity["max_abs_prob_diff"] < 1e-4
    assert parity["n_labelled"] > 0 and "test/val images" in parity["samples"]
    # A trained model's answers vary across the samples, so the parity check means something.
    assert parity["degenerate"] is False and parity["output_spread"] > 1e-2 and "warning" not in parity
    assert meta["classes"] == ["0", "1", "2"] and meta["format"] == "onnx" and meta["version"].startswith(fast_run.name)
    run_dc = json.loads((fast_run / "model" / "model.json").read_text())["data_config"]
    assert meta["source_run"]["id"] == fast_run.name and meta["data_config"] == run_dc

    files = _image_files(fast_run) + [str(tmp_path / "missing.png")]
    ours = BundlePredictor.load(bundle).predict_paths(files, top_k=3)
    ref = Predictor.from_run(fast_run).predict_paths(files, top_k=3)
    assert ours[-1].error and ref[-1].error
    for a, b in zip(ours[:-1], ref[:-1], strict=True):
        assert a.top[0][0] == b.top[0][0]
        np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-4)

    torch_rt = BundlePredictor.load(bundle, runtime="torch")
    x = np.stack([torch_rt.decode(f) for f in files[:4]])
    np.testing.assert_allclose(torch_rt.predict_arrays(x), BundlePredictor.load(bundle).predict_arrays(x), atol=1e-4)


def test_export_fails_when_preprocessing_drifts(
    fast_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = export_mod._preprocessing_module

    def drifted(model, dc: DataConfig):  # type: ignore[no-untyped-def]
        # The classic deployment bug: the exported graph normalises with other statistics than training.
        return original(
            model, DataConfig(dc.input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_pct=dc.crop_pct)
        )

    monkeypatch.setattr(export_mod, "_preprocessing_module", drifted)
    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        export(fast_run, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_int8_quantisation_reports_accuracy_change(fast_run: Path, tmp_path: Path) -> None:
    bundle = export(fast_run, tmp_path / "q", quantize="int8")
    meta = json.loads((bundle / "bundle.json").read_text())
    q = meta["quantization"]
    assert meta["model_file"] == "model.int8.onnx" and (bundle / "model.onnx").exists()
    assert q["size_int8_bytes"] > 0 and q["size_fp32_bytes"] > 0  # smaller unless weights are shared
    assert b"ConvInteger" in (bundle / "model.int8.onnx").read_bytes()  # the convolutions run in int8
    assert not list(bundle.glob("*prequant*"))  # the intermediate graph is not left in the bundle
    assert "accuracy_change" in q and 0.0 <= q["top1_agreement"] <= 1.0
    preds = BundlePredictor.load(bundle).predict_paths(_image_files(fast_run)[:3])
    assert all(p.error is None and abs(sum(pr for _, pr in p.top) - p.top[0][1]) < 1e-6 for p in preds)


def test_torchvision_model_exports_with_parity(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=10)
    run_dir = train_run(ws, "mobilenet_v3_small", image_size=32, batch_size=8)
    bundle = export(run_dir, tmp_path / "mnv3")
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_prob_diff"] < 1e-4
    assert meta["data_config"]["input_size"] == 32 and meta["data_config"]["storage_size"] == 37
    files = _image_files(run_dir)[:4]
    ours = BundlePredictor.load(bundle).predict_paths(files, top_k=2)
    ref = Predictor.from_run(run_dir).predict_paths(files, top_k=2)
    for a, b in zip(ours, ref, strict=True):
        assert a.top[0][0] == b.top[0][0] and abs(a.top[0][1] - b.top[0][1]) < 1e-4


def test_output_spread_flags_constant_outputs() -> None:
    rng = np.random.default_rng(0)
    constant = np.tile(np.array([[0.2, 0.5, 0.3]], dtype=np.float32), (10, 1))
    spread = export_mod.output_spread(constant)
    assert spread == {"output_spread": 0.0, "degenerate": True, "distinct_top1": 1}
    nearly = constant + rng.normal(0, 1e-5, constant.shape).astype(np.float32)
    assert export_mod.output_spread(nearly)["degenerate"] is True
    varied = rng.dirichlet(np.ones(3), size=10)
    assert export_mod.output_spread(varied)["degenerate"] is False
    assert export_mod.output_spread(varied)["output_spread"] == pytest.approx(float(varied.std(axis=0).max()))


def test_degenerate_model_is_reported_by_export(tmp_path: Path) -> None:
    """mobilenet_v3_small from scratch, 1 epoch on 24 images: it answers the same for every input (spread
    ~1e-8, five orders below the threshold), so a passing parity check proves nothing and export says so."""
    from picsift.cli import build_app

    ws = make_workspace(tmp_path, per_class=8)
    run_dir = train_run(ws, "mobilenet_v3_small", image_size=32, batch_size=8)
    r = CliRunner().invoke(build_app(), ["export", "--run", str(run_dir), "--out", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    parity = json.loads(r.stdout)["parity"]
    assert parity["passed"] and parity["degenerate"] is True and parity["output_spread"] < 1e-4
    assert parity["distinct_top1"] == 1 and parity["n"] == 10  # 6 test/val images + 4 noise images
    expected = (
        f"the model's outputs barely vary across the 10 parity samples (max std {parity['output_spread']:.1e}): the "
        "check cannot tell a correct export from a broken one; the model may be degenerate (predicts the same "
        "for every image)"
    )
    assert parity["warning"] == expected
    assert r.stderr.strip() == f"warning: {expected}"
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["parity"]["degenerate"] is True and meta["parity"]["warning"] == expected


def test_classical_run_exports_as_artifact_bundle(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=12)
    run_dir = train_run(ws, "logistic")
    bundle = export(run_dir, tmp_path / "skl")
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["format"] == "artifact" and meta["family"] == "classical"
    files = _image_files(run_dir)[:4]
    bp = BundlePredictor.load(bundle)
    assert bp.runtime.name == "sklearn"
    ours, ref = bp.predict_paths(files, top_k=2), Predictor.from_run(run_dir).predict_paths(files, top_k=2)
    assert [[c for c, _ in p.top] for p in ours] == [[c for c, _ in p.top] for p in ref]
    # both apply the run's temperature (fitted at training): float64 in the bundle, float32 in the predictor
    np.testing.assert_allclose([[q for _, q in p.top] for p in ours], [[q for _, q in p.top] for p in ref], atol=1e-6)


def test_cli_export_and_predict_bundle(fast_run: Path, tmp_path: Path) -> None:
    from picsift.cli import build_app

    runner = CliRunner()
    ws = fast_run.parents[1]
    out = tmp_path / "cli-bundle"
    r = runner.invoke(
        build_app(), ["export", "--workspace", str(ws), "--run", fast_run.name, "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parity"]["passed"] is True
    files = _image_files(fast_run)[:3]
    r1 = runner.invoke(build_app(), ["predict", *files, "--bundle", str(out), "--json"])
    r2 = runner.invoke(build_app(), ["predict", *files, "--workspace", str(ws), "--run", fast_run.name, "--json"])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = json.loads(r1.stdout)["predictions"], json.loads(r2.stdout)["predictions"]
    assert [p["label"] for p in a] == [p["label"] for p in b]
    bad = runner.invoke(build_app(), ["export", "--workspace", str(ws), "--quantize", "int4"])
    assert bad.exit_code == 2 and "int8" in bad.output
