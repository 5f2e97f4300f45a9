"""Classical classifiers (scikit-learn) on image features: the estimators and their safe persistence."""

from picsift.classical.estimators import (
    CLASSICAL,
    FeatureTransformer,
    load_estimator,
    make_classifier,
    make_pipeline,
    predict_proba_arrays,
    save_estimator,
)
from picsift.models.classical_names import DEFAULT_FEATURES

__all__ = [
    "CLASSICAL",
    "DEFAULT_FEATURES",
    "FeatureTransformer",
    "load_estimator",
    "make_classifier",
    "make_pipeline",
    "predict_proba_arrays",
    "save_estimator",
]
