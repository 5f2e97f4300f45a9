"""Export a run to a self-contained bundle: ONNX model with its preprocessing, classes and metadata.

The ONNX graph takes what every picsift predictor feeds its model: uint8 pixels (N, S, S, 3) at the
data config's storage size, i.e. the output of `picsift.data.images.resize_square`. The centre crop to
`input_size`, the scaling to [0, 1] and the mean/std normalisation are *inside* the graph, so the only
step outside it is the one shared function that decodes and resizes; preprocessing cannot drift
between training and serving. The export checks itself: ONNX Runtime and PyTorch predict the same
sample images (from the run's test/val split) and the export fails if they disagree.

Bundle layout::

    bundle.json       classes, data config, version, source run, parity, quantisation, the run's inference
                      spec ("inference": temperature, class scales, chosen test-time views, unknown
                      rejection), and its temperature and class_scales at the top level as before
    model.onnx        float32 graph (input "pixels" uint8 NHWC, output "logits")
    model.int8.onnx   with --quantize int8 (dynamic quantisation); bundle.json's model_file names it
    model/            a copy of the run's artifact (safetensors + model.json), for `--runtime torch`
    unknown_bank.npz  the unknown rejector's feature bank, when the run has one

Classical (scikit-learn) runs have feature extractors outside scikit-learn, so instead of ONNX their
bundle carries the artifact (format "artifact") and is served by the same predictor as the run.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from picsift.atomic import partial_folder_for, remove_stale_partial_folders
from picsift.config import check_number
from picsift.data.available import (
    MISSING,
    UNDECODABLE,
    SkippedImage,
    check_strict,
    file_problem,
    skipped_dicts,
)
from picsift.data.hashing import sha256_file
from picsift.data.images import catalog_source, load_rgb, resize_square
from picsift.errors import ConfigError, ImageDecodeError, PicsiftError, RunNotFoundError
from picsift.inference import InferenceSpec, Predictor, load_artifact, read_spec
from picsift.inference.runtime import ONNX_INPUT, ONNX_OUTPUT, onnx_logits, onnx_session
from picsift.jsonio import write_json
from picsift.models.artifact import META_FILE
from picsift.models.forward import model_input
from picsift.models.registry import DataConfig
from picsift.numerics import softmax
from picsift.runs import ARTIFACT_DIR, RunFolder
from picsift.version import __version__

log = logging.getLogger("picsift.deploy")

BUNDLE_FILE = "bundle.json"
MAX_SAMPLES = 100_000  # parity-check images at most
BUNDLE_FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
BANK_FILE = "unknown_bank.npz"
INPUT_NAME = ONNX_INPUT
OUTPUT_NAME = ONNX_OUTPUT
DEFAULT_OPSET = 17
PARITY_MAX_PROB_DIFF = 1e-3


class ExportError(PicsiftError):
    """The export could not be made, or the exported model disagrees with the original."""


# Below this (the largest, over classes, standard deviation across the samples of the reference
# probabilities) the model answers the same for every sample, so agreement between two runtimes proves nothing.
MIN_OUTPUT_SPREAD = 1e-3


@dataclass(frozen=True)
class Samples:
    """uint8 (N, S, S, 3) sample images, their labels (-1 when unknown) and where they came from; `skipped`:
    the run's test/val images left out because their file is missing on disk or no longer decodes."""

    x: np.ndarray
    y: np.ndarray
    source: str
    skipped: list[SkippedImage] = field(default_factory=list)


def _preprocessing_module(model: Any, dc: DataConfig) -> Any:
    from torch import nn

    class WithPreprocessing(nn.Module):
        """uint8 (N, S, S, 3) -> picsift.models.forward.model_input (centre crop, normalise) -> model -> logits."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixels: Any) -> Any:
            return self.model(model_input(pixels.permute(0, 3, 1, 2), dc))

    return WithPreprocessing().eval()


def _torch_to_onnx(module: Any, example: Any, path: Path, opset: int) -> str:
    """Export with the TorchScript-based exporter where available (torch 2.4 ... 2.x), else dynamo."""
    import torch

    common: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" not in params or "dynamic_axes" in params:
        kwargs = dict(common, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        if "dynamo" in params:
            kwargs["dynamo"] = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is still supported
                # The graph takes one storage size, so the crop and the normalisation constants are meant to be fixed.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.onnx.export(module, (example,), str(path), **kwargs)
            return "torchscript"
        except Exception as e:  # e.g. an op only the new exporter handles
            if "dynamo" not in params:
                raise ExportError(f"torch.onnx.export failed: {type(e).__name__}: {e}") from e
            log.warning("TorchScript ONNX export failed (%s); trying the dynamo exporter", e)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            dynamic_shapes={"pixels": {0: batch}},
            **common,
        )
    except Exception as e:
        raise ExportError(f"torch.onnx.export (dynamo) failed: {type(e).__name__}: {e}") from e
    return "dynamo"


def sample_images(run_dir: Path, dc: DataConfig, classes: list[str], n: int, seed: int = 0) -> Samples:
    """Up to n images from the run's test then val split (decoded like serving does), plus 4 noise images.

    Falls back to random images only when the run's workspace is not available on this machine.
    """
    rng = np.random.default_rng(seed)
    size = dc.storage_size
    noise = rng.integers(0, 256, size=(4, size, size, 3), dtype=np.uint8)
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[SkippedImage] = []
    source = "random noise (the run's workspace was not found)"
    try:
        run = RunFolder(run_dir)
        data = run.read_data_split()
        ws_root = Path(run.read_env()["workspace"])
        from picsift.store import Workspace, is_workspace

        if is_workspace(ws_root):
            ws = Workspace.open(ws_root)
            try:
                ids = list(data.get("test_ids", [])) + list(data.get("val_ids", []))
                rows = {r.id: r for r in ws.catalog.images(ids=ids)} if ids else {}
            finally:
                ws.close()
            index = {c: i for i, c in enumerate(classes)}
            for image_id in ids:
                row = rows.get(image_id)
                if row is None:
                    continue
                problem = file_problem(row.path)
                if problem is not None:
                    skipped.append(SkippedImage(row.id, row.path, MISSING, problem))
                    continue
                try:
                    arrays.append(resize_square(load_rgb(catalog_source(row.path, row.sha256, ws.cache_dir)), size))
                except (ImageDecodeError, OSError) as e:
                    skipped.append(SkippedImage(row.id, row.path, UNDECODABLE, str(e)))
                    continue
                labels.append(index.get(row.label or "", -1))
                if len(arrays) >= n:
                    break
            if arrays:
                source = f"{len(arrays)} test/val images of {ws_root.name} + 4 noise images"
    except (OSError, KeyError, ValueError, PicsiftError) as e:
        log.warning("cannot read the run's sample images (%s); checking parity on noise images", e)
    x = np.concatenate([np.stack(arrays), noise]) if arrays else noise
    y = np.array(labels + [-1] * len(noise), dtype=np.int64)
    return Samples(x, y, source, skipped)


def compare(reference: np.ndarray, other: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Agreement of two (N, K) probability arrays; accuracy of each on the labelled rows."""
    ref_top, oth_top = reference.argmax(1), other.argmax(1)
    labelled = y >= 0
    out: dict[str, Any] = {
        "n": int(len(reference)),
        "max_abs_prob_diff": float(np.abs(reference - other).max()) if len(reference) else 0.0,
        "top1_agreement": float((ref_top == oth_top).mean()) if len(reference) else 1.0,
        "n_labelled": int(labelled.sum()),
    }
    if labelled.any():
        out["accuracy_reference"] = float((ref_top[labelled] == y[labelled]).mean())
        out["accuracy_exported"] = float((oth_top[labelled] == y[labelled]).mean())
    return out


def output_spread(reference: np.ndarray) -> dict[str, Any]:
    """How much a model's (N, K) probabilities vary across the N parity samples.

    -> {"output_spread": max over classes of the standard deviation across samples, "degenerate": spread below
    MIN_OUTPUT_SPREAD, "distinct_top1": how many classes are ever the top-1}. A degenerate model answers the
    same for every input, so a parity check on it cannot tell a correct export from a broken one.
    """
    probs = np.asarray(reference, dtype=np.float64)
    spread = float(probs.std(axis=0).max()) if probs.size and len(probs) > 1 else 0.0
    return {
        "output_spread": spread,
        "degenerate": bool(spread < MIN_OUTPUT_SPREAD),
        "distinct_top1": int(len(np.unique(probs.argmax(axis=1)))) if probs.size else 0,
    }


def degenerate_message(n: int, spread: float) -> str:
    """The warning for a model whose outputs barely vary (max std `spread`) over `n` parity samples."""
    return (
        f"the model's outputs barely vary across the {n} parity samples (max std {spread:.1e}): the check "
        "cannot tell a correct export from a broken one; the model may be degenerate (predicts the same for "
        "every image)"
    )


def bundle_spec(run: RunFolder) -> InferenceSpec:
    """The run's inference spec as its bundle carries it (without the fit reports)."""
    return read_spec(run).replace(fits={})


def _inline_aliased_initializers(src: Path, dst: Path) -> None:
    """Replace Identity nodes that merely rename a weight by a copy of that weight.

    The TorchScript exporter folds BatchNorm into the convolution before it and de-duplicates equal
    constants, so a conv can get its weight or bias through an Identity of another tensor; ONNX Runtime
    runs that, but its quantiser needs every conv weight to be an initializer."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
            graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    onnx.save(model, str(dst))


def _quantize_int8(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = int8.with_name(int8.stem + ".prequant.onnx")
    _inline_aliased_initializers(fp32, source)
    # Conv layers become ConvInteger, whose CPU kernel takes uint8 weights; QUInt8 is the portable choice.
    last: Exception | None = None
    try:
        for weight_type in (QuantType.QUInt8, QuantType.QInt8):
            try:
                logging.disable(logging.WARNING)  # the quantiser warns on the root logger about the uint8 input
                try:
                    quantize_dynamic(str(source), str(int8), weight_type=weight_type)
                finally:
                    logging.disable(logging.NOTSET)
                onnx_session(int8)  # a model ORT cannot load is not an export
                return
            except Exception as e:
                last = e
                int8.unlink(missing_ok=True)
    finally:
        source.unlink(missing_ok=True)
    raise ExportError(f"int8 quantisation failed: {type(last).__name__}: {last}")


def _old_name(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.old-{int(time.time() * 1000)}")


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not (out_dir / BUNDLE_FILE).exists() and any(out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir} exists and is not a picsift bundle; choose an empty or new folder")


def _recover(out_dir: Path) -> None:
    """Undo what a killed export left beside `out_dir`: its partial folder is removed, and a previous bundle it
    had moved aside (killed between the two renames of `_replace_dir`) is put back when `out_dir` is absent."""
    remove_stale_partial_folders(out_dir)
    olds = sorted(out_dir.parent.glob(f".{out_dir.name}.old-*"), key=lambda p: p.name)
    if not out_dir.exists() and olds and (olds[-1] / BUNDLE_FILE).is_file():
        olds.pop().rename(out_dir)
        log.warning("restored the bundle %s that an interrupted export had moved aside", out_dir)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _partial_bundle(out: Path) -> Iterator[Path]:
    """An empty `.NAME.partial-<pid>` folder beside `out` to build the bundle in (hidden and named partial: no
    reader takes it for a bundle), removed when the block raises; a full or read-only disk becomes DiskError."""
    _check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover(out)
    with partial_folder_for(out) as tmp:  # a full disk in whatever words torch or onnx put it: DiskError
        yield tmp


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move a finished bundle into place; a server reloading `out_dir` never sees half a bundle."""
    if out_dir.exists():
        _check_out_dir(out_dir)
        old = _old_name(out_dir)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def export(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    quantize: str | None = None,
    *,
    samples: int = 64,
    opset: int = DEFAULT_OPSET,
    tolerance: float = PARITY_MAX_PROB_DIFF,
    version: str | None = None,
    strict: bool = False,
) -> Path:
    """Export a run folder to a bundle folder (default `<workspace>/exports/<run id>`); returns it.

    Raises ExportError if ONNX Runtime and PyTorch disagree on the sample images (top-1 or more than
    `tolerance` in any probability), MissingImagesError with `strict` when a sample image's file is missing
    or no longer decodes (else it is skipped and listed in bundle.json's parity "skipped_images"), ConfigError
    for `samples` outside 1-MAX_SAMPLES or an unknown `quantize`. A model
    whose outputs barely vary across the samples is recorded as parity "degenerate" with a "warning".
    The bundle is built in a hidden `.NAME.partial-<pid>` folder and renamed into place when complete: a kill
    leaves the previous bundle (or none) and a partial folder the next export removes. DiskError when the
    disk is full or read-only; ConfigError when `out_dir` holds something other than a bundle.
    """
    import torch

    run_dir = Path(run_dir).resolve()
    run = RunFolder(run_dir)
    if not run.artifact_dir.is_dir():
        raise RunNotFoundError(f"{run_dir} is not a finished run (no {ARTIFACT_DIR}/ folder)")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8 (or omitted), got {quantize!r}")
    check_number(samples, "--samples", low=1, high=MAX_SAMPLES, whole=True)
    artifact = load_artifact(run_dir)
    dc = artifact.data_config
    out = Path(out_dir) if out_dir is not None else run_dir.parent.parent / "exports" / run_dir.name
    out = out.resolve()
    with _partial_bundle(out) as tmp:
        shutil.copytree(run.artifact_dir, tmp / ARTIFACT_DIR)
        spec = bundle_spec(run)
        if spec.unknown is not None:
            shutil.copyfile(run.unknown_bank_path, tmp / BANK_FILE)
        run_info = run.read_record_if_any()
        meta: dict[str, Any] = {
            "format_version": BUNDLE_FORMAT_VERSION,
            "model": artifact.model_name,
            "family": artifact.family,
            "classes": artifact.classes,
            "data_config": dc.to_dict(),
            "preprocessing": (
                "decode to RGB (EXIF orientation, alpha on white), picsift.data.images.resize_square to "
                f"{dc.storage_size} (shorter side, bilinear antialiased, centre crop); in the graph: centre "
                f"crop {dc.input_size}, (x - 255 mean) / (255 std)"
            ),
            "inference": spec.to_dict(),
            "temperature": spec.temperature,
            "class_scales": None if spec.class_scales is None else list(spec.class_scales),
            "source_run": {
                "id": run_dir.name,
                "path": str(run_dir),
                "best_val_acc": run_info.get("best_val_acc"),
                "catalog_hash": run_info.get("catalog_hash"),
            },
            "workspace": str(run_dir.parent.parent),
            "picsift_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        predictor = Predictor.from_artifact(artifact)
        smp = sample_images(run_dir, dc, artifact.classes, samples)
        check_strict(smp.skipped, strict, "export")
        reference = predictor.predict_raw(smp.x)  # the model's own probabilities: no TTA, no temperature

        if not isinstance(artifact.model, torch.nn.Module):  # classical (scikit-learn) or ensemble runs
            meta.update(
                format="artifact",
                model_file=None,
                parity={
                    "runtime": "same predictor as the run",
                    "samples": smp.source,
                    "passed": True,
                    "skipped_images": skipped_dicts(smp.skipped),
                },
            )
            if quantize:
                raise ConfigError(
                    f"--quantize applies to ONNX exports; {artifact.family} runs are exported as artifacts"
                )
            digest = sha256_file(tmp / ARTIFACT_DIR / META_FILE)
        else:
            module = _preprocessing_module(artifact.model, dc)
            example = torch.from_numpy(smp.x[:2].copy())
            with torch.no_grad():
                exporter = _torch_to_onnx(module, example, tmp / ONNX_FILE, opset)
            session = onnx_session(tmp / ONNX_FILE)
            exported = softmax(onnx_logits(session, smp.x))
            parity = compare(reference, exported, smp.y)
            parity.update(samples=smp.source, tolerance=tolerance, runtime="onnxruntime CPU vs torch eager")
            parity["passed"] = bool(parity["max_abs_prob_diff"] <= tolerance and parity["top1_agreement"] == 1.0)
            parity.update(output_spread(reference), skipped_images=skipped_dicts(smp.skipped))
            if parity["degenerate"]:
                parity["warning"] = degenerate_message(len(reference), parity["output_spread"])
                log.info("export of %s: %s", run_dir.name, parity["warning"])
            if not parity["passed"]:
                raise ExportError(
                    f"exported model disagrees with PyTorch on {smp.source}: max probability difference "
                    f"{parity['max_abs_prob_diff']:.2e} (allowed {tolerance:.0e}), top-1 agreement "
                    f"{parity['top1_agreement']:.3f} (needed 1.0); the model has an op ONNX exports "
                    "differently: please report it with the model name"
                )
            meta.update(
                format="onnx",
                model_file=ONNX_FILE,
                parity=parity,
                exporter=exporter,
                opset=opset,
                input={
                    "name": INPUT_NAME,
                    "dtype": "uint8",
                    "layout": "NHWC",
                    "shape": ["batch", dc.storage_size, dc.storage_size, 3],
                },
                output={"name": OUTPUT_NAME, "meaning": "logits; probabilities = softmax(logits / T)"},
            )
            if quantize == "int8":
                _quantize_int8(tmp / ONNX_FILE, tmp / INT8_FILE)
                q = compare(reference, softmax(onnx_logits(onnx_session(tmp / INT8_FILE), smp.x)), smp.y)
                q.update(
                    samples=smp.source,
                    method="onnxruntime dynamic quantisation (int8 weights, activations quantised at run time)",
                    size_fp32_bytes=(tmp / ONNX_FILE).stat().st_size,
                    size_int8_bytes=(tmp / INT8_FILE).stat().st_size,
                )
                if "accuracy_exported" in q:
                    q["accuracy_change"] = q["accuracy_exported"] - q["accuracy_reference"]
                meta.update(model_file=INT8_FILE, quantization=q)
            digest = sha256_file(tmp / meta["model_file"])
        meta["version"] = version or f"{run_dir.name}-{digest[:8]}"
        write_json(tmp / BUNDLE_FILE, meta)  # last: a folder without it is no bundle
        _replace_dir(tmp, out)
    log.info("exported %s to %s (version %s)", run_dir.name, out, meta["version"])
    return out
