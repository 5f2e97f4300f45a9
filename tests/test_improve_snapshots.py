"""Snapshot ensembles: `train --snapshots N` keeps the last N epochs, `ensemble --snapshots RUN` combines them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsift.improve.snapshots import list_snapshots
from support.improve import make_workspace, quick_config


def test_fast_cnn_snapshots_make_an_ensemble_run_that_evaluates_and_predicts(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from picsift import train
    from picsift.cli import build_app
    from picsift.config import EvalConfig
    from picsift.evaluate import pipeline
    from picsift.improve.rundata import split_data
    from picsift.inference import Predictor

    ws = make_workspace(tmp_path)
    run_dir = train.run(quick_config(ws, epochs=4, snapshots=3)).run_dir
    snaps = list_snapshots(run_dir)
    assert [e for e, _ in snaps] == [2, 3, 4]  # only the last 3 epochs are kept

    runner = CliRunner()
    app = build_app()
    out = runner.invoke(app, ["ensemble", "--snapshots", str(run_dir), "--method", "weighted", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    ens = Path(summary["run_dir"])
    assert summary["members"] == [f"{run_dir.name}@epoch-{e}" for e in (2, 3, 4)]
    assert sum(summary["weights"]) == pytest.approx(1.0)
    config = json.loads((ens / "config.json").read_text())["ensemble"]
    assert config["snapshots_of"] == run_dir.name and config["epochs"] == [2, 3, 4]
    # each member carries exactly its epoch's weights
    member = load_file(str(ens / "model" / "members" / "0" / "weights.safetensors"))
    snap = load_file(str(snaps[0][1]))
    assert member.keys() == snap.keys() and all(bool((member[k] == snap[k]).all()) for k in snap)

    # evaluate and predict like any run
    result = pipeline.run(EvalConfig(run=str(ens), device="cpu"))
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and result.metrics["n"] > 0
    test = split_data(run_dir, "test")
    probs = Predictor.from_run(ens).predict_arrays(test.x)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    image = next((tmp_path / "images" / "0").glob("*.png"))
    pred = runner.invoke(app, ["predict", str(image), "--run", str(ens), "--json"])
    assert pred.exit_code == 0, pred.output
    assert '"label"' in pred.stdout

    # a run without snapshots, or both forms at once, is a one-line error
    plain = train.run(quick_config(ws, epochs=1)).run_dir
    no = runner.invoke(app, ["ensemble", "--snapshots", str(plain)])
    assert no.exit_code == 2 and "--snapshots 3" in no.output
    both = runner.invoke(app, ["ensemble", str(plain), str(run_dir), "--snapshots", str(run_dir)])
    assert both.exit_code == 2


def test_standard_loop_keeps_snapshots(tmp_path: Path) -> None:
    from picsift import train
    from picsift.improve.snapshots import make_snapshot_ensemble

    ws = make_workspace(tmp_path, per_class=12)
    cfg = quick_config(ws, model="mobilenet_v3_small", epochs=3, image_size=32, snapshots=2, model_params={})
    run_dir = train.run(cfg).run_dir
    assert [e for e, _ in list_snapshots(run_dir)] == [2, 3]
    ens = make_snapshot_ensemble(run_dir, last=2)
    assert json.loads((ens / "model" / "model.json").read_text())["family"] == "ensemble"
