"""Images -> float32 embeddings with a pretrained backbone, on one of several CPU/GPU execution paths.

Backends (measured by bench/embed_bench.py; the fastest on CPU is the default):
  "eager"          fp32 PyTorch, NCHW
  "channels_last"  fp32 PyTorch with NHWC memory format (oneDNN's preferred layout for convolutions)
  "bf16"           PyTorch under bfloat16 autocast, channels_last (fast only on CPUs with AVX512-BF16/AMX)
  "compile"        torch.compile (inductor; needs a C++ compiler, the first batches pay the compile)
  "onnx"           the model exported to ONNX and run by ONNX Runtime (needs onnxruntime)
On the 2-core development machine (EfficientNet-Lite0, 224 px, 5 interleaved rounds) the medians over
eager fp32 were: onnx 3.1x, bf16 2.7x (AVX512-BF16 CPU; cosine to fp32 >= 0.998), compile 1.2x,
channels_last 0.9x (bench/results/embed_bench.json). On an NVIDIA H200 (EfficientNet-Lite2, 260 px, batches of
256, bench/gpu_bench.py): bf16 8,810 images/s, 1.37x eager fp32's 6,408 (cosine >= 0.9995), channels_last 1.00x.

Preprocessing is the project's eval rule from the DataConfig: images at storage size are centre-cropped
to input_size, images at input_size are used as they are, any other size is resized (shorter side to
storage size, data_config.interpolation, antialiased) and centre-cropped; then scaled to [0, 1] and
normalised with mean/std.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from picsift.errors import ConfigError
from picsift.models.registry import DataConfig

log = logging.getLogger("picsift.models.pretrained")

EMBED_BACKENDS = ("eager", "channels_last", "bf16", "compile", "onnx")
DEFAULT_CPU_BACKEND = "onnx"
# H200, Lite2 at 260 px: 8,810 images/s vs 6,408 eager fp32 (bench/results/gpu_bench.json)
DEFAULT_CUDA_BACKEND = "bf16"
DEFAULT_DEVICE_BACKEND = "channels_last"  # other accelerators (mps)


def _check_images(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ConfigError(f"embed expects uint8 images of shape (N, H, W, 3); got {x.dtype} {tuple(x.shape)}")
    return x


def preprocess(x: np.ndarray, dc: DataConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float32 (N, 3, input_size, input_size) on `device` (see the module
    docstring). The uint8 pixels are moved first, so on a GPU the resize and normalisation run there and a
    quarter of the float32 bytes cross the bus."""
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device, non_blocking=True)
    h, w = t.shape[-2:]
    size, storage = dc.input_size, dc.storage_size
    if not (h == w and h in (size, storage)):
        scale = storage / min(h, w)
        mode = dc.interpolation if dc.interpolation in ("bilinear", "bicubic") else "bilinear"
        new = (max(storage, round(h * scale)), max(storage, round(w * scale)))
        t = F.interpolate(t.float(), size=new, mode=mode, antialias=True, align_corners=False)
        t = t.clamp_(0, 255)
        h, w = new
    top, left = (h - size) // 2, (w - size) // 2
    t = t[..., top : top + size, left : left + size].float().div_(255.0)
    mean = torch.tensor(dc.mean, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(dc.std, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    return ((t - mean) / std).contiguous()


def _export_onnx(model: nn.Module, size: int) -> bytes:
    """The model as ONNX bytes with a dynamic batch axis (legacy exporter, then the dynamo one)."""
    example = torch.zeros(2, 3, size, size)
    try:
        with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
            warnings.simplefilter("ignore")
            path = Path(tmp) / "model.onnx"
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
            return path.read_bytes()
    except Exception as e:  # e.g. a torch without the legacy exporter
        log.info("legacy ONNX export failed (%s); using the dynamo exporter", e)
    program = torch.onnx.export(
        model, (example,), dynamo=True, dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
    )
    return program.model_proto.SerializeToString()  # type: ignore[union-attr]


class Embedder:
    """A backbone prepared for one backend: call it on uint8 (N, H, W, 3) batches -> float32 (N, D).

    model: a feature model (e.g. `create_pretrained_backbone(name, num_classes=0)`), put in eval mode here.
    backend: one of EMBED_BACKENDS or "auto" (on CPU: DEFAULT_CPU_BACKEND when ONNX Runtime is installed,
    else "eager"; on a CUDA GPU: DEFAULT_CUDA_BACKEND, bf16; on another accelerator: DEFAULT_DEVICE_BACKEND).
    threads: ONNX Runtime intra-op threads (default: torch's thread count); spinning: whether idle ONNX Runtime
    threads spin-wait (off by default: on a shared 2-core machine spinning threads steal the cores the work needs;
    bench/embed_bench.py measured 3.8x vs 3.0x eager).
    Raises ConfigError for an unknown backend or "onnx" without onnxruntime.
    """

    def __init__(
        self,
        model: nn.Module,
        data_config: DataConfig,
        backend: str = "auto",
        device: str | torch.device = "cpu",
        threads: int | None = None,
        spinning: bool = False,
    ) -> None:
        """Prepare `model` for `backend` on `device` (see the class docstring). "onnx" exports the model to ONNX
        (opset 17, dynamic batch) and opens an ONNX Runtime CPU session: seconds, once; "compile" defers its
        compile cost to the first call. Raises ConfigError for an unknown backend, "onnx" on a non-CPU device,
        or "onnx" without onnxruntime installed."""
        self.data_config = data_config
        self.device = torch.device(device)
        self.backend = self._resolve(backend)
        self._session: Any = None
        model = model.eval()
        if self.backend == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads or torch.get_num_threads()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if not spinning:
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                _export_onnx(model.cpu(), data_config.input_size), opts, providers=["CPUExecutionProvider"]
            )
            self._module: nn.Module | None = None
            return
        model = model.to(self.device)
        if self.backend in ("channels_last", "bf16"):
            model = model.to(memory_format=torch.channels_last)
        if self.backend == "compile":
            model = torch.compile(model)  # type: ignore[assignment]
        self._module = model

    def _resolve(self, backend: str) -> str:
        if backend == "auto":
            if self.device.type == "cuda":
                return DEFAULT_CUDA_BACKEND
            if self.device.type != "cpu":
                return DEFAULT_DEVICE_BACKEND
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                return "eager"  # channels_last measured 0.9x eager here; bf16 is fast only on some CPUs
            return DEFAULT_CPU_BACKEND
        if backend not in EMBED_BACKENDS:
            raise ConfigError(f"unknown embedding backend {backend!r}; choose one of {', '.join(EMBED_BACKENDS)}")
        if backend == "onnx":
            if self.device.type != "cpu":
                raise ConfigError("the onnx embedding backend runs on the CPU only; use bf16 or channels_last on a GPU")
            try:
                import onnxruntime  # noqa: F401
            except ImportError as e:
                raise ConfigError("the onnx embedding backend needs onnxruntime: pip install onnxruntime") from e
        return backend

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB images -> float32 (N, D) features (D: the model's pooled width, 1280 for the
        EfficientNet-Lite models), rows in input order, computed in one batch (callers batch; see `embed`).
        Images are preprocessed by `preprocess` (the module docstring's rule). Raises ConfigError for another
        dtype or shape."""
        images = _check_images(images)
        if self._session is not None:
            x = preprocess(images, self.data_config)
            return np.asarray(self._session.run(None, {"pixels": x.numpy()})[0], dtype=np.float32)
        assert self._module is not None
        x = preprocess(images, self.data_config, self.device)
        if self.backend in ("channels_last", "bf16"):
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.backend == "bf16"
            else contextlib.nullcontext()
        )
        with autocast:
            out = self._module(x)
        return out.float().flatten(1).cpu().numpy()


def make_embedder(
    model: nn.Module, data_config: DataConfig, backend: str = "auto", device: str | torch.device = "cpu"
) -> Embedder:
    """An Embedder (see its docstring); build it once and reuse it, as ONNX export/compile cost seconds."""
    return Embedder(model, data_config, backend=backend, device=device)


def embed(
    model: nn.Module | Embedder,
    images: np.ndarray | Iterable[np.ndarray],
    data_config: DataConfig | None = None,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    backend: str = "auto",
) -> np.ndarray:
    """Embed images with a feature model: uint8 (N, H, W, 3), or an iterable of such decoded batches.

    model: a feature model (num_classes=0) with `data_config`, or a prepared Embedder (then device/backend
    are its own). Returns float32 (N, D), rows in input order; (0, 0) for no images.
    Raises ConfigError for images of another dtype/shape or an unknown backend.
    """
    if isinstance(model, Embedder):
        embedder = model
    else:
        if data_config is None:
            raise ConfigError("embed needs the model's data_config (input size, mean, std)")
        embedder = Embedder(model, data_config, backend=backend, device=device)
    batches: Iterable[np.ndarray]
    if isinstance(images, np.ndarray):
        arr = _check_images(images)
        batches = (arr[i : i + batch_size] for i in range(0, len(arr), batch_size))
    else:
        batches = images
    parts = [embedder(b) for b in batches if len(b)]
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)
