"""Device and precision selection: cuda, then mps, then cpu; bf16 autocast where the CPU has it."""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager, nullcontext

import torch

from picsift.errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """The torch device for `name`: "auto" picks CUDA, then MPS, then CPU. ConfigError for a name that is not
    a device, or cuda without a CUDA GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"--device {name!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available")
    return device


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX, where bf16 matmuls/convs are faster than fp32."""
    if os.environ.get("PICSIFT_CPU_BF16") in ("0", "1"):
        return os.environ["PICSIFT_CPU_BF16"] == "1"
    return _cpuinfo_has_bf16()


@functools.cache
def _cpuinfo_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """Mixed precision: fp16/bf16 on GPU, bf16 on CPUs with native support, else a no-op."""
    if not enabled:
        return nullcontext()
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's generators with `seed`; returns a torch.Generator seeded with it."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
