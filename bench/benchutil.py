"""What every benchmark records about the machine it ran on (BENCHMARKING.md): CPU, cores, versions, load,
and a measured fp32 matmul rate, so results from noisy shared machines can be read in context."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Achieved fp32 matmul GFLOP/s with torch's current thread setting (the machine's ceiling, today)."""
    import torch

    a = torch.randn(n, n)
    torch.mm(a, a)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, a)
    return repeats * 2 * n**3 / (time.perf_counter() - start) / 1e9


def machine_info() -> dict[str, Any]:
    import torch

    versions: dict[str, str] = {}
    for name in ("sklearn", "onnxruntime", "timm", "cleanlab"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            continue
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    gflops = round(matmul_gflops(), 1)
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        **versions,
        "matmul_fp32_gflops": gflops,
        "load_average": [round(x, 2) for x in load],
        "load_avg_1min": round(load[0], 2),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def results_path(name: str, quick: bool) -> Path:
    """bench/results/<name>.json, or <name>_quick.json for a `--quick` smoke run, which never overwrites the
    measured results."""
    return Path(__file__).resolve().parent / "results" / f"{name}{'_quick' if quick else ''}.json"
