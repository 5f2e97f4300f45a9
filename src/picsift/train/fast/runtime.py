"""Runtime settings for the fast recipe: CPU threads and torch.compile, chosen where they pay."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from picsift.config import check_number
from picsift.models.fastcnn import FastCNN

log = logging.getLogger("picsift.train")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity on Linux, else all cores)."""
    cpus = _usable_cpu_ids()
    return len(cpus) if cpus is not None else os.cpu_count() or 1


def choose_threads(cores: int, load: float) -> int:
    """Threads for the training process: all usable cores on an idle machine, fewer on a busy one.

    OpenMP kernels wait at a barrier for their slowest thread; when other processes keep the cores
    busy, a descheduled thread stalls all the others. On a 2-core machine with a load of ~10, one
    thread trained the fast CNN about 4x faster than two, so threads = cores minus the busy ones.
    """
    free = cores - load
    return max(1, min(cores, int(free + 0.5)))


def _usable_cpu_ids() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def _cpu_times(cpus: set[int] | None) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over the given CPUs (all if None) from /proc/stat, or None off Linux."""
    busy = total = 0.0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *values = line.split()
                if not (name.startswith("cpu") and name[3:].isdigit()):
                    continue
                if cpus is not None and int(name[3:]) not in cpus:
                    continue
                fields = [float(v) for v in values]
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
                busy, total = busy + sum(fields) - idle, total + sum(fields)
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total > 0 else None


def busy_cores(window_s: float = 0.3) -> float:
    """How many of this process's usable cores other work keeps busy now, sampled from /proc/stat.

    The load average would do, but it remembers the last minute: a process that has just finished
    (a previous training run, a test) still counts, and a fresh run on an idle machine took one thread."""
    cpus = _usable_cpu_ids()
    first = _cpu_times(cpus)
    if first is None:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    time.sleep(window_s)
    second = _cpu_times(cpus)
    if second is None or second[1] <= first[1]:
        return 0.0
    return (second[0] - first[0]) / (second[1] - first[1]) * usable_cores()


def env_threads(raw: str) -> int:
    """$PICSIFT_THREADS's text as a thread count; ConfigError unless it is a whole number from 1 to 1024."""
    try:
        value: Any = int(raw.strip())
    except ValueError:  # not a whole number
        value = raw
    return check_number(value, "$PICSIFT_THREADS", low=1, high=1024, whole=True)


@contextmanager
def thread_scope(device: torch.device, threads: int | None = None, processes: int = 1) -> Iterator[int]:
    """Set torch's intra-op threads (`threads`, else $PICSIFT_THREADS: ConfigError when it is not a whole number
    from 1 to 1024) for the duration of training, then restore them. `processes`: training
    processes sharing this machine's cores (torchrun's LOCAL_WORLD_SIZE), each taking its share of the free ones."""
    before = torch.get_num_threads()
    if device.type != "cpu":
        yield before
        return
    env = os.environ.get("PICSIFT_THREADS")
    if threads is None and env:
        threads = env_threads(env)
    if threads is None:
        threads = max(1, choose_threads(usable_cores(), busy_cores()) // max(1, processes))
    torch.set_num_threads(max(1, int(threads)))
    log.info("fastcnn: %d CPU thread(s) (was %d)", torch.get_num_threads(), before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextmanager
def cudnn_autotune(device: torch.device) -> Iterator[None]:
    """On CUDA, let cuDNN time its convolution algorithms for each input shape once (the fast recipe sees two
    shapes, with progressive resizing) and keep the fastest, as GPU speed records do; restored afterwards."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


# Compiling takes tens of seconds, all inside a time budget: a budget this short trains eagerly instead.
COMPILE_MIN_BUDGET_S = 120.0


def maybe_compile(
    model: torch.nn.Module, device: torch.device, mode: str | bool, budget_s: float | None
) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """The training forward, compiled where compilation pays for itself.

    On CUDA compilation takes seconds to tens of seconds and speeds every step, so "auto" compiles, unless a
    time budget under COMPILE_MIN_BUDGET_S would spend much of itself compiling. On a CPU the convolutions
    already run in oneDNN and compiling does not pay: on 2 cores (torch 2.14) it took 40 s and the compiled
    training step ran 8% slower than eager, so "auto" stays eager there; `model_params={"compile": True}` forces
    it (any device, any budget). `model` may be the network in DistributedDataParallel (torchrun).
    """
    short_budget = budget_s is not None and budget_s < COMPILE_MIN_BUDGET_S
    want = mode is True or mode == "true" or (mode == "auto" and device.type == "cuda" and not short_budget)
    if not want:
        return model  # a module is callable as (batch, whiten bias grad)
    try:
        compiled = torch.compile(model, dynamic=False)
    except Exception as e:  # compile support varies by platform; eager always works
        log.warning("torch.compile unavailable (%s); training eagerly", e)
        return model
    return compiled


def images_per_second(
    model: FastCNN, size: int, device: torch.device, amp: bool, channels_last: bool, batch: int = 64, steps: int = 2
) -> float:
    """Training throughput from a short probe (forward + backward on random input); weights and
    BatchNorm statistics are restored afterwards, so the probe leaves no trace."""
    from picsift.device import autocast

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()

    def once() -> None:
        with autocast(device, amp):
            out = model(x)
        out.float().square().mean().backward()

    once()  # first call pays one-off costs (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    return batch * steps / max(seconds, 1e-9)
