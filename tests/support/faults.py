"""Fault tests' helpers: the fault scenarios of bench/ (the same code the benchmark runs, with fewer kills) and
small real file systems that fill up or turn read-only."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from support.images import REPO, require

BENCH = REPO / "bench"


def bench_module(name: str) -> ModuleType:
    """A module of bench/ (fault_commands, fault_servers, fault_disks, faultkit, faults)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@contextlib.contextmanager
def small_disk(folder: Path, size_kib: int = 8 * 1024) -> Iterator[Path]:
    """A tmpfs of `size_kib` KiB mounted at `folder` for the block; skips (fails under PICSIFT_REQUIRE_ALL=1) where
    this process may not mount (not root, no CAP_SYS_ADMIN)."""
    kit = bench_module("faultkit")
    why = kit.can_mount()
    require(why is None, why or "")
    with kit.small_disk(folder, size_kib) as disk:
        yield disk


def fill(folder: Path, leave_kib: int = 0) -> Path:
    """Fill `folder`'s file system to `leave_kib` KiB free; returns the filler file (unlink it to free the space)."""
    return bench_module("faultkit").fill(folder, leave_kib)


def remount(folder: Path, mode: str) -> None:
    """Remount `folder`'s tmpfs "ro" or "rw"."""
    bench_module("faultkit").remount(folder, mode)
