"""Classical classifiers (scikit-learn) on image features, as first-class registry models.

A classical model is a scikit-learn Pipeline  FeatureTransformer(extractor) -> StandardScaler -> classifier
that maps uint8 images (N, S, S, 3) straight to class probabilities, so a classical run gives the same
run folder, evaluation, predictions and exported artifact as a CNN run. It follows the estimator
contract: params-only `__init__`, `fit` returns self, `classes_`, `predict_proba` columns in `classes_`
order. Training reads features from the workspace feature cache, so refits cost only the classifier.

Artifacts are saved with skops (a restricted format that refuses unknown types on load), never pickle.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from picsift.atomic import atomic_path
from picsift.errors import ConfigError, ModelNotFoundError, RunNotFoundError
from picsift.features.deep import DeepSource
from picsift.features.extractors import Extractor, extractor_from_module, get_extractor
from picsift.jsonio import write_json
from picsift.models.classical_names import CLASSICAL_MODELS, DEFAULT_FEATURES
from picsift.models.registry import DataConfig, create_model
from picsift.suggest import closest_names, did_you_mean

ESTIMATOR_FILE = "estimator.skops"
FEATURE_MODEL_FILE = "feature_extractor.safetensors"
FEATURE_META_FILE = "feature_extractor.json"


@dataclass(frozen=True)
class ClassicalKind:
    """A classical model: its description and `build(params, seed)` -> an unfitted scikit-learn classifier."""

    description: str
    build: Callable[[dict[str, Any], int], Any]  # (params, seed) -> unfitted classifier


def _svm(params: dict[str, Any], seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # Platt scaling on cross-validated decision values gives the probabilities evaluation needs (what
    # SVC(probability=True), deprecated in scikit-learn 1.9, did inside). ensemble=False: one SVC on all
    # the data, so prediction costs a single SVM. The folds are fitted to the class counts at fit time.
    svc = SVC(**{"C": 10.0, "kernel": "rbf", "gamma": "scale", "random_state": seed, **params})
    return CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False)


def _knn(params: dict[str, Any], seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**{"n_neighbors": 5, "weights": "distance", **params})


def _tree(params: dict[str, Any], seed: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(**{"random_state": seed, **params})


def _forest(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**{"n_estimators": 200, "random_state": seed, "n_jobs": 2, **params})


def _logistic(params: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**{"C": 1.0, "max_iter": 2000, "random_state": seed, **params})


def _boosting(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # The histogram variant: orders of magnitude faster than GradientBoostingClassifier on 1,000+ features.
    return HistGradientBoostingClassifier(**{"max_iter": 100, "early_stopping": False, "random_state": seed, **params})


_BUILDERS = {
    "svm": _svm,
    "knn": _knn,
    "decision-tree": _tree,
    "random-forest": _forest,
    "logistic": _logistic,
    "gradient-boosting": _boosting,
}
CLASSICAL: dict[str, ClassicalKind] = {
    name: ClassicalKind(CLASSICAL_MODELS[name], _BUILDERS[name]) for name in CLASSICAL_MODELS
}


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """uint8 images (N, S, S, 3) -> float32 features (N, D) with a named picsift feature extractor.

    Stateless apart from the extractor itself, which is built on first use (a deep extractor's CNN is
    not part of the estimator's saved state; `save_estimator` stores its weights beside it).
    """

    def __init__(self, extractor: str = DEFAULT_FEATURES) -> None:
        self.extractor = extractor

    def _get(self) -> Extractor:
        ext: Extractor | None = getattr(self, "_ext", None)
        if ext is None or ext.name != self.extractor:
            ext = get_extractor(self.extractor)
            self._ext = ext
        return ext

    def fit(self, X: Any, y: Any = None) -> FeatureTransformer:
        """Build the extractor and record its output width D from the first image. ConfigError when X is not
        uint8-compatible (N, S, S, 3) or (N, S, S) images."""
        x = _as_images(X)
        ext = self._get()
        self.n_features_out_ = int(ext(x[:1]).shape[1]) if len(x) else 0
        return self

    def transform(self, X: Any) -> np.ndarray:
        """uint8 images (N, S, S, 3) -> float32 features (N, D). ConfigError for images of another shape or
        pixels outside [0, 255]."""
        check_is_fitted(self, "n_features_out_")
        return self._get()(_as_images(X))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_ext", None)  # a live torch module is not estimator state
        return state


def _as_images(X: Any) -> np.ndarray:
    x = np.asarray(X)
    if x.ndim == 3:  # grayscale (N, S, S)
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ConfigError(f"classical image models take uint8 images shaped (N, S, S, 3); got {tuple(x.shape)}")
    if x.dtype != np.uint8:
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ConfigError("classical image models take uint8 pixels in [0, 255]")
        x = x.astype(np.uint8)
    return x


def make_classifier(name: str, params: dict[str, Any] | None = None, seed: int = 0) -> Any:
    """An unfitted scikit-learn classifier by picsift name, with validated hyper-parameters."""
    if name not in CLASSICAL:
        did = did_you_mean(name, CLASSICAL)
        raise ModelNotFoundError(f"unknown classical model {name!r}{did} (known: {', '.join(CLASSICAL)})")
    params = dict(params or {})
    default = CLASSICAL[name].build({}, seed)
    default = core_classifier(default)
    known = set(default.get_params(deep=False))
    bad = sorted(set(params) - known)
    if bad:
        hints = {b: closest_names(b, sorted(known), n=1, cutoff=0.6) for b in bad}
        said = ", ".join(f"{b!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for b, h in hints.items())
        raise ConfigError(f"{name}: unknown hyper-parameter {said}; {type(default).__name__} takes {sorted(known)}")
    try:
        return CLASSICAL[name].build(params, seed)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: invalid hyper-parameters {params}: {e}") from e


def core_classifier(clf: Any) -> Any:
    """The classifier whose hyper-parameters the user sets (the SVC inside its calibration wrapper)."""
    from sklearn.calibration import CalibratedClassifierCV

    return clf.estimator if isinstance(clf, CalibratedClassifierCV) else clf


def set_calibration_folds(clf: Any, y: np.ndarray, seed: int, name: str) -> None:
    """Give a calibrated classifier stratified folds (at most 5) that fit `y`'s class counts; other classifiers
    are left as they are. ConfigError when a class has fewer than 2 images."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold

    if not isinstance(clf, CalibratedClassifierCV):
        return
    smallest = int(np.bincount(y).min()) if len(y) else 0
    if smallest < 2:
        raise ConfigError(
            f"{name}: probability calibration needs at least 2 training images in every class; "
            f"the smallest class has {smallest}"
        )
    clf.set_params(cv=StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed))


def make_pipeline(
    name: str, features: str = DEFAULT_FEATURES, params: dict[str, Any] | None = None, seed: int = 0
) -> Pipeline:
    """The full image -> probabilities estimator: FeatureTransformer -> StandardScaler -> classifier."""
    get_extractor(features)  # fail early with a did-you-mean
    return Pipeline(
        [
            ("features", FeatureTransformer(features)),
            ("scale", StandardScaler()),
            ("clf", make_classifier(name, params, seed)),
        ]
    )


# ---- persistence ------------------------------------------------------------------------------------


def _transformer(model: Any) -> FeatureTransformer | None:
    steps = getattr(model, "named_steps", {})
    ft = steps.get("features")
    return ft if isinstance(ft, FeatureTransformer) else None


def save_estimator(model: Any, out_dir: Path) -> str:
    """Write the estimator with skops into `out_dir`; a deep extractor's CNN goes beside it as safetensors."""
    import skops.io as sio

    out_dir.mkdir(parents=True, exist_ok=True)
    ft = _transformer(model)
    if ft is not None:
        ext = ft._get()
        if ext.source is not None:
            from safetensors.torch import save_file

            module = ext.source.module()
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            with atomic_path(out_dir / FEATURE_MODEL_FILE) as tmp:
                save_file(state, str(tmp))
            meta = {"extractor": ext.name, "key": ext.key, **ext.source.describe()}
            write_json(out_dir / FEATURE_META_FILE, meta)
    with atomic_path(out_dir / ESTIMATOR_FILE) as tmp:
        sio.dump(model, tmp)
    return ESTIMATOR_FILE


# Estimators saved before this package existed name their picsift types under the old module path.
_LEGACY_MODULE = "picsift.models.classical"


def _allowed(type_name: str) -> bool:
    return type_name.startswith(("sklearn.", "numpy.", f"{__name__}.", f"{_LEGACY_MODULE}.", "builtins."))


def load_estimator(path: Path) -> Any:
    """Load a skops file, trusting only scikit-learn, numpy and picsift's own types."""
    import skops.io as sio

    if not path.exists():
        raise RunNotFoundError(f"classical model file {path} is missing")
    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not _allowed(t)]
    if refused:
        raise ConfigError(f"{path} holds types picsift does not load: {refused}; refusing to load it")
    if any(t.startswith(f"{_LEGACY_MODULE}.") for t in untrusted):
        # skops imports a type's module by name: let the old name resolve to this module for the load.
        sys.modules.setdefault(_LEGACY_MODULE, sys.modules[__name__])
    model = sio.load(path, trusted=untrusted)
    meta_path = path.parent / FEATURE_META_FILE
    ft = _transformer(model)
    if ft is not None and meta_path.exists():
        ft._ext = _bundled_extractor(path.parent, json.loads(meta_path.read_text()))
    return model


def _bundled_extractor(folder: Path, meta: dict[str, Any]) -> Extractor:
    from safetensors.torch import load_file

    def build() -> Any:
        module = create_model(meta["model"], num_classes=int(meta["num_classes"]), **meta["model_kwargs"])
        module.load_state_dict(load_file(str(folder / FEATURE_MODEL_FILE), device="cpu"))
        return module

    dc = DataConfig.from_dict(meta["data_config"])
    source = DeepSource(meta["model"], int(meta["num_classes"]), dict(meta["model_kwargs"]), dc, build)
    return extractor_from_module(meta["extractor"], meta["key"], source)


def predict_proba_arrays(artifact: Any, x: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S, 3) -> (N, K) float32 in the artifact's class order."""
    model = artifact.model
    k = len(artifact.classes)
    if len(x) == 0:
        return np.zeros((0, k), dtype=np.float32)
    proba = np.asarray(model.predict_proba(_as_images(x)), dtype=np.float32)
    classes = np.asarray(model.classes_)
    if proba.shape[1] == k and np.array_equal(classes, np.arange(k)):
        return proba
    # A classifier that saw only some classes: place its columns by class index, zeros elsewhere.
    out = np.zeros((len(x), k), dtype=np.float32)
    out[:, classes.astype(int)] = proba
    return out
