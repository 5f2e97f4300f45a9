"""Unknown-class rejection and drift checks on a tiny digits run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.improve import make_workspace, quick_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from picsift import train

    root = tmp_path_factory.mktemp("unk")
    ws = make_workspace(root, classes=4, per_class=30)
    noise = root / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(noise / f"{i}.png")
    return train.run(quick_config(ws, epochs=6)).run_dir, root


def test_unknown_rejection_rejects_noise_more_than_known_images(setup: tuple[Path, Path]) -> None:
    from picsift.data.inputs import expand_inputs
    from picsift.improve.rundata import split_data
    from picsift.improve.unknown import evaluate_unknowns, fit_unknown, load_detector
    from picsift.inference import read_spec
    from picsift.runs import RunFolder

    run_dir, root = setup
    info = fit_unknown(run_dir, target_frr=0.1)
    assert info["val_rejection_rate"] <= 0.1 + 1e-9
    rule = read_spec(RunFolder(run_dir)).unknown
    assert rule is not None and rule.to_dict()["thresholds"] == info["thresholds"]
    det = load_detector(run_dir)
    noise = np.stack([det.predictor.decode(p) for p in expand_inputs([str(root / "noise")])])
    result = evaluate_unknowns(det, split_data(run_dir, "test").x, noise)
    assert result["unknown_rejected"] > result["known_rejected"]
    assert result["auroc"]["knn"] > 0.8


def test_predict_reject_unknown_labels_noise_unknown(setup: tuple[Path, Path]) -> None:
    from picsift.api import predict

    run_dir, root = setup
    rows = [r.to_dict() for r in predict(str(root / "noise"), run=run_dir, reject_unknown=True).predictions]
    assert sum(r["label"] == "unknown" for r in rows) >= len(rows) // 2
    plain = [r.to_dict() for r in predict(str(root / "noise"), run=run_dir).predictions]
    assert all(r["label"] != "unknown" for r in plain)


def test_drift_says_retrain_for_noise_and_not_for_the_same_digits(setup: tuple[Path, Path]) -> None:
    from picsift.improve.drift import check_drift

    run_dir, root = setup
    shifted = check_drift(run_dir, root / "noise")
    same = check_drift(run_dir, root / "images")
    assert shifted["verdict"] == "retrain"
    assert shifted["embedding"]["domain_auc"] > same["embedding"]["domain_auc"]
    assert same["verdict"] != "retrain"
    assert "retrain" in shifted["message"].lower()
