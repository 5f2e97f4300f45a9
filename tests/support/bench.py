"""Benchmark modules (bench/) for the tests that run a benchmark's own code on a small scale."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """The module bench/NAME.py (bench/ goes on sys.path, so its `benchutil` imports resolve)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)
