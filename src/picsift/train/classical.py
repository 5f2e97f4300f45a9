"""Training a classical (scikit-learn) model: features from the workspace cache, then scaler and classifier.

The estimator itself (picsift.classical) maps uint8 images to probabilities; here it is fitted on the cached
features of the training images, so refits cost only the classifier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from picsift.classical.estimators import (
    FeatureTransformer,
    core_classifier,
    make_classifier,
    save_estimator,
    set_calibration_folds,
)
from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.features.extract import extract
from picsift.features.extractors import Extractor, get_extractor
from picsift.jsonio import dumps
from picsift.models.classical_names import DEFAULT_FEATURES
from picsift.models.registry import DataConfig, ModelSpec
from picsift.runs import open_run
from picsift.store import Workspace
from picsift.train.data import TrainedModel

log = logging.getLogger("picsift.train")


def _features_name(cfg: TrainConfig, ws: Any = None) -> tuple[str, Extractor]:
    """The extractor to use; run ids are resolved to absolute folders so the model never needs the workspace."""
    name = cfg.features or DEFAULT_FEATURES
    ext = get_extractor(name, ws)
    if ext.kind == "run":
        name = f"run:{open_run(ws, name[4:]).path}"
        ext = get_extractor(name, ws)
    return name, ext


def resolve_data_config(spec: ModelSpec, cfg: TrainConfig, rows: list[Any]) -> DataConfig:
    """Decode images at the size the extractor reads (64 for handcrafted; the CNN's size for embeddings)."""
    ws = None
    if (cfg.features or "").startswith("run:"):
        ws = Workspace.open(cfg.workspace)
    _, ext = _features_name(cfg, ws)
    if cfg.image_size and cfg.image_size != ext.size:
        log.warning("--image-size %s ignored: extractor %s reads %spx images", cfg.image_size, ext.name, ext.size)
    return DataConfig(input_size=ext.size, crop_pct=1.0)


def _cached_features(ws: Any, ids: list[int], x: np.ndarray, ext: Extractor) -> np.ndarray:
    """Features through the workspace cache when every id is a catalog image, else from the arrays."""
    if ids and len(ids) == len(x):
        by_id = {r.id: r for r in ws.catalog.images(ids=ids, readable=None, include_excluded=True)}
        if all(i in by_id for i in ids):
            return extract(ws, [by_id[i] for i in ids], ext)
    return ext(x)


def fit_classical(
    spec: ModelSpec, data: Any, cfg: TrainConfig, ws: Any, log_row: Callable[[dict[str, Any]], None]
) -> Any:
    """Fit feature scaling + classifier on the training arrays; one history row with val_acc and times."""
    name, ext = _features_name(cfg, ws)
    params = dict(cfg.model_params)
    clf = make_classifier(spec.name, params, cfg.seed)
    if len(data.x_train) < 2:
        raise ConfigError(f"{spec.name} needs at least 2 training images, got {len(data.x_train)}")
    if spec.name == "knn":
        k = int(clf.get_params()["n_neighbors"])
        if k > len(data.x_train):
            raise ConfigError(f"knn: n_neighbors={k} exceeds the {len(data.x_train)} training images")
    if cfg.balance in ("auto", "weights") and "class_weight" in core_classifier(clf).get_params():
        core_classifier(clf).set_params(class_weight="balanced")
    set_calibration_folds(clf, data.y_train, cfg.seed, spec.name)
    t0 = time.perf_counter()
    f_train = _cached_features(ws, list(data.train_ids), data.x_train, ext)
    f_val = _cached_features(ws, list(data.val_ids), data.x_val, ext) if len(data.x_val) else None
    feature_seconds = time.perf_counter() - t0
    if f_train.shape[1] == 0 or not np.isfinite(f_train).all():
        raise ConfigError(f"feature extractor {name!r} gave no usable features (empty or non-finite values)")
    transformer = FeatureTransformer(name)
    transformer._ext = ext
    transformer.n_features_out_ = int(f_train.shape[1])
    scaler = StandardScaler().fit(f_train)
    t1 = time.perf_counter()
    fit_kwargs: dict[str, Any] = {}
    if data.sample_weight is not None and spec.name != "knn":
        fit_kwargs["sample_weight"] = data.sample_weight
    try:
        clf.fit(scaler.transform(f_train), data.y_train, **fit_kwargs)
    except ValueError as e:
        raise ConfigError(f"{spec.name} on {name} features could not be fitted: {e}") from e
    fit_seconds = time.perf_counter() - t1
    model = Pipeline([("features", transformer), ("scale", scaler), ("clf", clf)])
    row: dict[str, Any] = {
        "epoch": 1,
        "train_acc": float(clf.score(scaler.transform(f_train), data.y_train)),
        "val_acc": float(clf.score(scaler.transform(f_val), data.y_val)) if f_val is not None else None,
        "feature_seconds": round(feature_seconds, 3),
        "fit_seconds": round(fit_seconds, 3),
        "features": name,
        "feature_dim": int(f_train.shape[1]),
    }
    log_row(row)
    log.info("%s on %s: val acc %s, fit %.2fs", spec.name, name, row["val_acc"], fit_seconds)
    return TrainedModel(
        model=model,
        model_kwargs={"features": name, "params": params},
        data_config=data.data_config,
        history=[row],
        val_acc=row["val_acc"],
        kept_epoch=1,
        extra={
            "features": name,
            "feature_key": ext.key,
            "feature_dim": int(f_train.shape[1]),
            "classifier": type(core_classifier(clf)).__name__,
            "classifier_params": {k: v for k, v in core_classifier(clf).get_params().items() if _jsonable(v)},
        },
    )


def _jsonable(v: Any) -> bool:
    try:
        dumps(v)
        return True
    except TypeError:
        return False


def write_estimator(model: Any, out_dir: Path) -> dict[str, Any]:
    """The classical family's artifact writer (models.artifact.save_artifact's write_model)."""
    return {"estimator_file": save_estimator(model, out_dir)}
