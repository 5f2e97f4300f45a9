"""The classical (scikit-learn) models as registry entries: names, descriptions, data config.

Their estimators are built by picsift.classical (a layer above the registry, since they read features).
"""

from __future__ import annotations

from picsift.models.registry import DataConfig, ModelSpec, register

DEFAULT_FEATURES = "hog"

CLASSICAL_MODELS = {
    "svm": "RBF support vector machine (C=10, Platt probabilities)",
    "knn": "k-nearest neighbours (k=5, distance-weighted)",
    "decision-tree": "a single decision tree (interpretable, weak)",
    "random-forest": "random forest of 200 trees",
    "logistic": "multinomial logistic regression (a linear probe)",
    "gradient-boosting": "histogram gradient boosting, 100 rounds",
}


def register_classical() -> None:
    """Register the classical (scikit-learn) models in the model registry; they take 64 px images."""
    for name, description in CLASSICAL_MODELS.items():
        register(
            ModelSpec(
                name=name,
                family="classical",
                data_config=DataConfig(input_size=64, crop_pct=1.0),
                description=f"{description}, on image features (--features, default {DEFAULT_FEATURES})",
                builder=None,
            )
        )
