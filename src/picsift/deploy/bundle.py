"""Predict with an exported bundle: ONNX Runtime on CPU by default, or the bundled torch artifact.

The only preprocessing outside the ONNX graph is `resize_square(load_rgb(...), storage_size)`, the
same function training and the run predictor use; the graph does crop and normalisation. A bundle carries
its run's inference spec (bundle.json "inference": temperature, class scales, chosen test-time views,
unknown rejection, with the rejector's feature bank beside it), so the same picsift.inference.Predictor
applies the same settings as the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from picsift.data.storage import fetch_folder, is_remote
from picsift.deploy.export import ARTIFACT_DIR, BANK_FILE, BUNDLE_FILE
from picsift.errors import ConfigError, RunCorruptError, RunNotFoundError
from picsift.inference import InferenceSpec, Predictor, load_artifact, runtime_for
from picsift.inference.predictor import chosen_views, fitted_rejector
from picsift.inference.runtime import OnnxRuntime, onnx_session
from picsift.models.registry import DataConfig

log = logging.getLogger("picsift.deploy")

RUNTIMES = ("auto", "onnx", "torch")


def bundle_cache() -> Path:
    """Where bundles loaded from object storage are kept: $XDG_CACHE_HOME/picsift/bundles (~/.cache by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "picsift" / "bundles"


def fetch_bundle(url: str) -> Path:
    """The local copy of the bundle `picsift export --out URL` uploaded to `url`, downloaded once per upload into
    `bundle_cache()` (`picsift.data.storage.fetch_folder`: every file checked against the upload's manifest,
    which is written last). StorageError naming the URL when there is no complete bundle there."""
    key = hashlib.sha256(url.rstrip("/").encode("utf-8", "surrogateescape")).hexdigest()[:32]
    folder = fetch_folder(url, bundle_cache() / key)
    if not (folder / BUNDLE_FILE).is_file():
        raise RunNotFoundError(f"{url} is not a picsift bundle ({BUNDLE_FILE} missing): make one with `picsift export`")
    return folder


def read_bundle_meta(path: Path) -> dict[str, Any]:
    """The bundle's description (its bundle JSON file) as a dict. RunNotFoundError when `path` is not a bundle,
    RunCorruptError when the file is unreadable."""
    meta_path = Path(path) / BUNDLE_FILE
    if not meta_path.is_file():
        raise RunNotFoundError(
            f"{path} is not a picsift bundle ({BUNDLE_FILE} missing): make one with `picsift export`"
        )
    try:
        return dict(json.loads(meta_path.read_text()))
    except (OSError, ValueError) as e:
        raise RunCorruptError(f"cannot read {meta_path}: {e}") from e


def bundle_spec(meta: dict[str, Any], where: str) -> InferenceSpec:
    """The inference spec a bundle carries; bundles made before it carried one had only temperature and
    class_scales at the top level."""
    if meta.get("inference") is not None:
        return InferenceSpec.from_dict(meta["inference"], f"{where}'s inference spec")
    t, scales = meta.get("temperature"), meta.get("class_scales")
    return InferenceSpec(
        temperature=float(t) if t else None, class_scales=tuple(float(s) for s in scales) if scales else None
    )


class BundlePredictor(Predictor):
    """A Predictor loaded from a bundle, with the bundle's path, metadata and version.

    `predict_arrays` is thread-safe (ONNX Runtime sessions are; torch and scikit-learn runtimes lock)."""

    def __init__(self, path: Path, meta: dict[str, Any], predictor: Predictor) -> None:
        super().__init__(
            predictor.runtime,
            predictor.spec,
            views=predictor.views,
            rejector=predictor.rejector,
            artifact=predictor.artifact,
        )
        self.path = path
        self.meta = meta
        self.version: str = str(meta.get("version", "unknown"))

    @classmethod
    def load(
        cls,
        path: str | Path,
        runtime: str = "auto",
        threads: int | None = None,
        device: str = "cpu",
        *,
        tta: bool = False,
        reject_unknown: bool = False,
    ) -> BundlePredictor:
        """path: a bundle folder, or the URL `picsift export --out URL` uploaded one to (`fetch_bundle`).
        runtime: "onnx" (ONNX Runtime, CPU), "torch" (the bundled artifact), "auto" (ONNX if present).
        tta / reject_unknown: as the run's Predictor (picsift.inference.Predictor.from_run), from the spec the
        bundle carries; ConfigError when it carries no unknown rejector. Unknown rejection needs the model's
        features, which the ONNX graph does not output: with it, "auto" runs the bundled artifact and "onnx"
        is a ConfigError."""
        if runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
        path = fetch_bundle(path) if isinstance(path, str) and is_remote(path) else Path(path).resolve()
        meta = read_bundle_meta(path)
        where = f"bundle {path}"
        spec = bundle_spec(meta, where)
        has_onnx = meta.get("format") == "onnx" and meta.get("model_file")
        if reject_unknown and runtime == "onnx":
            raise ConfigError(
                f"{where}: unknown rejection needs the model's features, which its ONNX model does not give; "
                "use the torch runtime (the bundled artifact)"
            )
        if reject_unknown and runtime == "auto":
            has_onnx = False
        if runtime == "onnx" and not has_onnx:
            raise ConfigError(f"bundle {path} has no ONNX model (format {meta.get('format')!r}); use --runtime torch")
        if runtime == "onnx" or (runtime == "auto" and has_onnx):
            model_file = path / str(meta["model_file"])
            if not model_file.is_file():
                raise RunNotFoundError(f"bundle {path} is incomplete: {model_file.name} missing")
            engine = OnnxRuntime(
                onnx_session(model_file, threads), list(meta["classes"]), DataConfig.from_dict(meta["data_config"])
            )
            predictor = Predictor(engine, spec)
        else:
            if not (path / ARTIFACT_DIR).is_dir():
                raise RunNotFoundError(f"bundle {path} carries no {ARTIFACT_DIR}/ artifact for the torch runtime")
            if threads:
                torch.set_num_threads(threads)
            artifact = load_artifact(path / ARTIFACT_DIR, device=device)
            predictor = Predictor(runtime_for(artifact, device), spec, artifact=artifact)
        if tta:
            predictor.views = chosen_views(spec, where)
        if reject_unknown:
            how = "fit it on the run with `picsift calibrate`, then export the run again"
            predictor.rejector = fitted_rejector(spec, path / BANK_FILE, where, how)
        return cls(path, meta, predictor)

    @property
    def storage_size(self) -> int:
        """The side S in pixels of the (S, S, 3) arrays the model takes."""
        return self.data_config.storage_size

    def info(self) -> dict[str, Any]:
        """What the server reports about the bundle: version, runtime, path and the bundle's model, classes,
        data config, source run, parity, quantization and calibration."""
        keep = (
            "model",
            "family",
            "format",
            "classes",
            "data_config",
            "source_run",
            "parity",
            "quantization",
            "temperature",
            "class_scales",
            "picsift_version",
            "created_at",
            "model_file",
        )
        return {
            "version": self.version,
            "runtime": self.runtime.name,
            "bundle": str(self.path),
            **{k: self.meta.get(k) for k in keep},
        }


def load_bundle(
    path: str | Path, runtime: str = "auto", *, tta: bool = False, reject_unknown: bool = False
) -> BundlePredictor:
    """`BundlePredictor.load`: what `picsift.api.predict(bundle=...)` uses."""
    return BundlePredictor.load(path, runtime, tta=tta, reject_unknown=reject_unknown)
