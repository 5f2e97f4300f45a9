"""Classical models follow scikit-learn's estimator contract and persist safely with skops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from picsift.classical import (
    CLASSICAL,
    FeatureTransformer,
    load_estimator,
    make_classifier,
    make_pipeline,
    save_estimator,
)
from picsift.errors import ConfigError, ModelNotFoundError


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """OpenMP spin-waiting makes gradient boosting crawl on a busy 2-core machine; one thread is steady."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def digit_images(n_per_class: int = 15, classes: int = 3, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Real digits as uint8 RGB images (N, size, size, 3) and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[:n_per_class] for c in range(classes)])
    imgs = [
        np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((size, size)).convert("RGB"))
        for i in idx
    ]
    return np.stack(imgs), d.target[idx]


def test_feature_transformer_follows_the_init_contract() -> None:
    ft = FeatureTransformer("lbp")
    check_no_attributes_set_in_init("FeatureTransformer", ft)
    check_parameters_default_constructible("FeatureTransformer", FeatureTransformer())
    check_get_params_invariance("FeatureTransformer", ft)
    check_set_params("FeatureTransformer", ft)
    assert clone(ft).get_params() == {"extractor": "lbp"}
    with pytest.raises(NotFittedError):
        ft.transform(np.zeros((1, 8, 8, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", sorted(CLASSICAL))
def test_pipeline_contract(name: str) -> None:
    x, y = digit_images()
    labels = np.array(["zero", "one", "two"])[y]  # string labels: classes_ must come back sorted
    params = {"knn": {"n_neighbors": 3}, "gradient-boosting": {"max_iter": 15, "min_samples_leaf": 5}}.get(name, {})
    model = make_pipeline(name, "hog", params, seed=0)
    check_get_params_invariance(name, model)

    def plain(est: object) -> dict:
        return {k: v for k, v in est.get_params().items() if not hasattr(v, "get_params") and k != "steps"}  # type: ignore[attr-defined]

    assert plain(clone(model)) == plain(model)
    with pytest.raises(NotFittedError):
        model.predict_proba(x)
    assert model.fit(x, labels) is model
    assert list(model.classes_) == ["one", "two", "zero"]
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # Columns are in classes_ order: the most probable column names the predicted class.
    agree = (model.classes_[proba.argmax(1)] == model.predict(x)).mean()
    assert agree >= 0.95
    assert (model.predict(x) == labels).mean() > 0.8  # training accuracy on separable digits


def test_hyper_parameter_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="did you mean 'n_estimators'"):
        make_classifier("random-forest", {"n_estimator": 10})
    with pytest.raises(ModelNotFoundError, match="did you mean svm"):
        make_classifier("svn")
    with pytest.raises(ConfigError, match="did you mean hog"):
        make_pipeline("svm", "hogg")
    assert make_classifier("svm", {"C": 3.0}).estimator.C == 3.0


@pytest.mark.parametrize("features", ["color-hist", "cnn:fastcnn"])
def test_skops_round_trip(tmp_path: Path, features: str) -> None:
    x, y = digit_images(8)
    model = make_pipeline("logistic", features).fit(x, y)
    name = save_estimator(model, tmp_path)
    loaded = load_estimator(tmp_path / name)
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), rtol=1e-5, atol=1e-6)
    if features.startswith("cnn:"):
        # The CNN travels with the model: its weights are stored beside the estimator.
        assert (tmp_path / "feature_extractor.safetensors").is_file()


class NotAnEstimator:
    pass


def test_load_refuses_foreign_types(tmp_path: Path) -> None:
    import skops.io as sio

    sio.dump({"payload": NotAnEstimator()}, tmp_path / "estimator.skops")
    with pytest.raises(ConfigError, match="refusing"):
        load_estimator(tmp_path / "estimator.skops")
