"""Ensembles (a new run of family "ensemble") and test-time augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from picsift.improve.ensemble import fit_weights
from picsift.improve.tta import select_views
from picsift.inference.tta import ViewSet, apply_view, average_probs
from support.improve import make_workspace, quick_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from picsift import train

    ws = make_workspace(tmp_path_factory.mktemp("ens"))
    return train.run(quick_config(ws)).run_dir


def test_ensemble_of_identical_runs_equals_the_single_run(run_dir: Path) -> None:
    from picsift.improve.ensemble import make_ensemble
    from picsift.improve.rundata import split_data
    from picsift.inference import Predictor

    ens = make_ensemble([run_dir, run_dir], method="weighted", name="twins")
    meta = json.loads((ens / "model" / "model.json").read_text())
    assert meta["family"] == "ensemble" and len(meta["extra"]["members"]) == 2
    assert (ens / "model" / "members" / "1" / "model.json").exists()  # self-contained
    test = split_data(run_dir, "test")
    single = Predictor.from_run(run_dir).predict_arrays(test.x)
    both = Predictor.from_run(ens).predict_arrays(test.x)
    np.testing.assert_allclose(both, single, atol=1e-5)
    summary = json.loads((ens / "run.json").read_text())
    assert summary["best_val_acc"] == pytest.approx(summary["member_val_acc"][0])
    folder = Path(run_dir).parent.parent.parent / "images" / "0"
    preds = Predictor.from_run(ens).predict_paths([str(next(folder.glob("*.png")))], top_k=2)
    assert preds[0].error is None and len(preds[0].top) == 2


def test_weighted_ensemble_prefers_the_better_member() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.full((300, 3), 0.1)
    good[np.arange(300), y] = 0.8
    noise = rng.dirichlet(np.ones(3), 300)
    w = fit_weights([noise, good], y)
    assert w[1] > 0.8 and np.isclose(sum(w), 1.0)


def test_views_shift_and_flip_pixels() -> None:
    x = np.zeros((1, 8, 8, 3), np.uint8)
    x[0, 3, 2] = 255
    assert apply_view(x, "hflip")[0, 3, 5, 0] == 255
    shifted = apply_view(x, "shift:2:1")  # right by 2, down by 1
    assert shifted[0, 4, 4, 0] == 255 and shifted.shape == x.shape


def test_view_selection_drops_a_flip_that_hurts() -> None:
    # A "model" that reads the class from which half of the image is bright: flipping breaks it.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = np.zeros((200, 8, 8, 3), np.uint8)
    for i, c in enumerate(y):
        x[i, :, :4] = 200 if c == 0 else 0
        x[i, :, 4:] = 0 if c == 0 else 200

    def predict(batch: np.ndarray) -> np.ndarray:
        left = batch[:, :, :4].mean((1, 2, 3)) / 255
        right = batch[:, :, 4:].mean((1, 2, 3)) / 255
        p0 = 0.05 + 0.9 * (left > right)
        return np.stack([p0, 1 - p0], 1)

    chosen = select_views(predict, x, y, ["identity", "hflip", "shift:1:0"])
    assert "hflip" not in chosen["views"]
    np.testing.assert_allclose(average_probs(predict, x, ViewSet.equal("one", ["identity"])), predict(x), atol=1e-6)


def test_views_compose_left_to_right() -> None:
    x = np.zeros((1, 8, 8, 3), np.uint8)
    x[0, 3, 2] = 255
    both = apply_view(x, "shift:2:1+hflip")  # right by 2, down by 1, then mirrored
    assert both[0, 4, 3, 0] == 255
    np.testing.assert_array_equal(both, apply_view(apply_view(x, "shift:2:1"), "hflip"))


def test_choosing_views_stores_them_and_predicting_only_reads_them(run_dir: Path) -> None:
    from picsift.improve.rundata import split_data
    from picsift.improve.tta import choose_for_run
    from picsift.inference import Predictor, read_spec
    from picsift.runs import RunFolder

    result = choose_for_run(run_dir)
    spec = read_spec(RunFolder(run_dir))
    assert spec.tta_views == tuple(result["views"]) and result["views"][0] == "identity"
    assert spec.fits["tta"]["val"]["acc_tta"] >= spec.fits["tta"]["val"]["acc_single"]
    p = Predictor.from_run(run_dir, tta=True)
    assert p.tta_views == result["views"]
    probs = p.predict_arrays(split_data(run_dir, "test").x)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_an_ensemble_names_members_fed_a_resized_copy(run_dir: Path) -> None:
    """Members of a smaller input size see the ensemble's (largest) input resized, not their own decode of each
    image: the run records them and the CLI warns, since their votes can differ from their own predictions."""
    from typer.testing import CliRunner

    from picsift import train
    from picsift.cli import build_app
    from picsift.runs import RunFolder
    from picsift.store import Workspace

    ws = Workspace.open(Path(run_dir).parent.parent)
    larger = train.run(quick_config(ws, epochs=1, image_size=48)).run_dir
    ws.close()
    small = RunFolder(run_dir).read_record()["run_id"]
    result = CliRunner().invoke(build_app(), ["ensemble", str(run_dir), str(larger), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["resized_members"] == [small] and summary["input_size"] > 32
    assert f"warning: {small} see each image resized from the ensemble's {summary['input_size']} px" in result.stderr
    same = CliRunner().invoke(build_app(), ["ensemble", str(run_dir), str(run_dir), "--json"])
    assert json.loads(same.stdout)["resized_members"] == [] and "warning" not in same.stderr
