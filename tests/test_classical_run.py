"""A classical run end to end: train -> run folder -> evaluate -> predict -> export, like a CNN run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from picsift import train
from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.inference import Predictor
from picsift.train.data import load_arrays
from support.features import make_workspace


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def test_svm_on_hog_run_evaluate_predict_export(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=25, classes=3, split_every=5)
    result = train.run(TrainConfig(workspace=ws.root, model="svm"))  # default features: hog
    run_dir = result.run_dir
    assert result.val_acc is not None and result.val_acc >= 0.8
    for name in ("config.json", "env.json", "data.json", "metrics.jsonl", "run.json", "model/model.json"):
        assert (run_dir / name).is_file(), name
    meta = json.loads((run_dir / "model" / "model.json").read_text())
    assert meta["family"] == "classical" and meta["extra"]["features"] == "hog"
    assert meta["data_config"]["input_size"] == 64
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["val_acc"] == result.val_acc and history[0]["fit_seconds"] >= 0

    test_rows = ws.catalog.training_images("test")
    predictor = Predictor.from_run(run_dir)
    x = load_arrays(ws, test_rows, predictor.data_config.storage_size, "test")
    probs = predictor.predict_arrays(x)
    assert probs.shape == (len(test_rows), 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    y = np.array([predictor.classes.index(r.label) for r in test_rows])
    assert (probs.argmax(1) == y).mean() >= 0.8

    paths = [r.path for r in test_rows[:5]]
    by_path = predictor.predict_paths(paths, top_k=2)
    assert [p.top[0][0] for p in by_path] == [predictor.classes[i] for i in probs[:5].argmax(1)]

    evaluate = pytest.importorskip("picsift.evaluate.pipeline")
    from picsift.config import EvalConfig

    report = evaluate.run(EvalConfig(workspace=ws.root, run=str(run_dir)))
    assert report.split == "test" and report.accuracy == pytest.approx((probs.argmax(1) == y).mean())

    export = pytest.importorskip("picsift.deploy.export")
    from picsift.deploy.bundle import BundlePredictor

    bundle = export.export(run_dir, tmp_path / "bundle")
    np.testing.assert_allclose(BundlePredictor.load(bundle).predict_arrays(x), probs, atol=1e-6)


def test_classical_on_a_trained_cnn_is_self_contained(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=10, classes=2)
    cnn = train.run(TrainConfig(workspace=ws.root, model="fastcnn", epochs=1, device="cpu"))
    result = train.run(TrainConfig(workspace=ws.root, model="logistic", features=f"run:{cnn.run_id}"))
    model_dir = result.run_dir / "model"
    assert (model_dir / "feature_extractor.safetensors").is_file()
    rows = ws.catalog.images()
    x = load_arrays(ws, rows, Predictor.from_run(result.run_dir).data_config.storage_size, "x")
    before = Predictor.from_run(result.run_dir).predict_arrays(x)
    shutil.rmtree(cnn.run_dir)  # the source run is gone; the classical model still predicts the same
    np.testing.assert_allclose(Predictor.from_run(result.run_dir).predict_arrays(x), before, atol=1e-6)


def test_bad_combinations_are_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=6, classes=2)
    with pytest.raises(ConfigError, match="n_neighbors=500 exceeds"):
        train.run(TrainConfig(workspace=ws.root, model="knn", model_params={"n_neighbors": 500}))
    with pytest.raises(ConfigError, match="did you mean lbp"):
        train.run(TrainConfig(workspace=ws.root, model="svm", features="lbpp"))
    svm = train.run(TrainConfig(workspace=ws.root, model="svm", features="color-hist"))
    with pytest.raises(ConfigError, match="needs a CNN run"):
        train.run(TrainConfig(workspace=ws.root, model="knn", features=f"run:{svm.run_id}"))
