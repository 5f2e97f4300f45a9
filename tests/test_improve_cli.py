"""The improve commands end to end through the CLI: train flags, calibrate, ensemble, predict, check-drift."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.inference import read_spec
from picsift.runs import RunFolder
from support.improve import make_workspace


def test_improve_commands_end_to_end(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    app = build_app()
    runner = CliRunner()
    common = ["--workspace", str(ws.root)]
    train_args = ["train", *common, "--epochs", "3", "--device", "cpu", "--balance", "auto", "--tta", "--json"]
    first = runner.invoke(app, [*train_args, "--seed", "0"])
    assert first.exit_code == 0, first.output
    run1 = json.loads(first.stdout)["run_dir"]
    assert read_spec(RunFolder(Path(run1))).tta_views  # train --tta chose the views
    second = runner.invoke(app, [*train_args, "--seed", "1"])
    run2 = json.loads(second.stdout)["run_dir"]

    cal = runner.invoke(app, ["calibrate", *common, "--run", run1, "--json"])
    assert cal.exit_code == 0, cal.output
    out = json.loads(cal.stdout)
    assert out["val"]["nll_after"] <= out["val"]["nll_before"] + 1e-9 and "unknown" in out

    ens = runner.invoke(app, ["ensemble", run1, run2, *common, "--method", "mean", "--json"])
    assert ens.exit_code == 0, ens.output
    ens_dir = json.loads(ens.stdout)["run_dir"]

    images = str(tmp_path / "images" / "1")
    pred = runner.invoke(app, ["predict", images, *common, "--run", ens_dir, "--tta", "--json"])
    assert pred.exit_code == 0, pred.output
    rows = json.loads(pred.stdout)["predictions"]
    assert rows and all("label" in r for r in rows)
    rej = runner.invoke(app, ["predict", images, *common, "--run", run1, "--reject-unknown", "--json"])
    assert rej.exit_code == 0, rej.output
    assert len(json.loads(rej.stdout)["predictions"]) == len(rows)

    drift = runner.invoke(app, ["check-drift", str(tmp_path / "images"), *common, "--run", run1, "--json"])
    assert drift.exit_code == 0, drift.output
    assert json.loads(drift.stdout)["verdict"] in ("ok", "watch", "retrain")

    bad = runner.invoke(app, ["ensemble", run1, *common])
    assert bad.exit_code == 2 and "at least 2 runs" in bad.output
