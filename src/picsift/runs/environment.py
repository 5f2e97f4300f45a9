"""What a run records about the machine it ran on (env.json): Python, platform, torch threads, GPU, packages."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

PACKAGES = (
    "picsift",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pillow",
    "scikit-learn",
    "scikit-image",
    "sqlalchemy",
    "onnxruntime",
    "cleanlab",
)


def package_versions() -> dict[str, str]:
    """{distribution name: version} of the installed PACKAGES."""
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def environment() -> dict[str, Any]:
    """{python, platform, processor, torch_threads, cuda (GPU 0's name, or None), packages}: the
    machine a run ran on."""
    import torch  # imported here: listing or reading runs needs no torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": package_versions(),
    }
