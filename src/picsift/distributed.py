"""Training in several processes (torchrun): which process this is, its process group, and the collectives
through which the processes agree.

`torchrun --nproc_per_node N -m picsift train ...` starts N copies of the command with RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (torch.distributed's env:// rendezvous).
`process_group()` reads them, joins the group (NCCL on `cuda:LOCAL_RANK` when a CUDA GPU is there and the device
allows it, else gloo on the CPU) and yields a `Dist`; without them it yields the one-process `SINGLE`, and every
collective below is then a no-op, so trainers are written once.

Rank 0 is the only process that reads and writes the workspace (`Dist.share` runs a step there and relays its
result, or its error, to the others); the others train on their shard of the data and write nothing. Decisions
that depend on a process's own clock (a time budget spent, whether to validate this epoch) are agreed through
`agree_max` / `any`, so no process leaves a loop that another is still running, which would leave that one
waiting in a collective.

Two time limits keep a failure from hanging the others: a collective while training gives up after
`PICSIFT_DIST_TIMEOUT` seconds (default 600), and a process waiting for rank 0's work alone (planning the run and
decoding the images, the transfer recipe's embeddings and probe, saving) after `PICSIFT_DIST_WAIT` seconds
(default 6 hours), each with a `DistributedError`. A process that dies closes its connections, and the others fail
at their next collective at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from picsift import progress
from picsift.config import MAX_MINUTES
from picsift.errors import ConfigError, DistributedError, PicsiftError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI asks `env_rank()` without loading it
    import torch

log = logging.getLogger("picsift.distributed")
T = TypeVar("T")

TIMEOUT_ENV = "PICSIFT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # a collective while training (torch's default for NCCL); also joining the group
WAIT_ENV = "PICSIFT_DIST_WAIT"
DEFAULT_WAIT_S = 6 * 3600.0  # waiting for rank 0's work alone: the first decoding of a large set, embeddings
RELAYED = "picsift_relayed"  # attribute set on an error a process re-raises because rank 0 raised it
# Words of the errors a collective raises when a peer dies or stops answering; gloo's pair timeout during DDP's
# gradient all-reduce reads "Application timeout caused pair closure" (seen under load, peer stopped).
_COMM_FAILURE_HINTS = (
    "gloo", "nccl", "connection closed", "connection reset", "timed out", "broken pipe", "pair closure",
    "application timeout",
)  # fmt: skip


@dataclass(frozen=True)
class Dist:
    """This process's place in a run of `world_size` processes (one per device), and the collectives of that
    run. `device`: the device this process trains on (`cuda:LOCAL_RANK` or `cpu`; None in one process, where
    the trainers choose it from `--device`); `backend`: "nccl" or "gloo" (None in one process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    backend: str | None = None
    device: torch.device | None = field(default=None, compare=False)  # None in one process
    waits: Any = field(default=None, compare=False, repr=False)  # gloo group with the PICSIFT_DIST_WAIT timeout

    @property
    def enabled(self) -> bool:
        """True in a run of more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that reads and writes the workspace, logs and prints."""
        return self.rank == 0

    def to_dict(self) -> dict[str, Any]:
        """{world_size, backend, device}: what a run records about how it trained."""
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "device": str(self.device) if self.device is not None else None,
        }

    def train_device(self, requested: str) -> torch.device:
        """The device to train on: this process's own in a run of several, else `select_device(requested)`."""
        from picsift.device import select_device

        return self.device if self.enabled and self.device is not None else select_device(requested)

    # ---- collectives: every process of the run must call each one, in the same order -----------------------

    def _tensor(self, values: Sequence[float]) -> torch.Tensor:
        import torch

        device = self.device if self.backend == "nccl" and self.device is not None else torch.device("cpu")
        return torch.tensor(list(values), dtype=torch.float64, device=device)

    def _reduce(self, values: Sequence[float], op: str) -> list[float]:
        import torch

        t = self._tensor(values)
        torch.distributed.all_reduce(t, op=getattr(torch.distributed.ReduceOp, op))
        return [float(v) for v in t.cpu()]

    def maximum(self, values: Sequence[float]) -> list[float]:
        """Element-wise largest values over all processes (several decisions agreed in one collective)."""
        if not self.enabled:
            return [float(v) for v in values]
        return self._reduce(values, "MAX")

    def agree_max(self, value: float) -> float:
        """The largest `value` over all processes (each process's own progress -> the run's)."""
        if not self.enabled:
            return value
        return self._reduce([value], "MAX")[0]

    def agree_min(self, value: float) -> float:
        """The smallest `value` over all processes (e.g. the slowest process's throughput)."""
        if not self.enabled:
            return value
        return self._reduce([value], "MIN")[0]

    def any(self, flag: bool) -> bool:
        """True when `flag` is true on any process: a stop or check decision all processes then take together."""
        return self.agree_max(1.0 if flag else 0.0) > 0.5

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over all processes (e.g. [correct, loss sum, images] of each process's shard)."""
        if not self.enabled:
            return [float(v) for v in values]
        return self._reduce(values, "SUM")

    def sum_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over all processes, in place (float tensors; moved to the backend's device and back)."""
        if not self.enabled:
            return t
        import torch

        if self.backend == "nccl" and self.device is not None and t.device != self.device:
            moved = t.to(self.device)
            torch.distributed.all_reduce(moved)
            t.copy_(moved.to(t.device))
        else:
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every process (pickled; for small things: settings, a plan, a result). The others may
        wait for it up to PICSIFT_DIST_WAIT seconds."""
        if not self.enabled:
            return obj
        import torch

        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, group=self.waits)
        return box[0]  # type: ignore[return-value]

    def share(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 only and return its value on every process. When it raises, rank 0 raises the error
        and every other process raises a copy of it marked relayed (`is_relayed`), so all leave together and only
        rank 0 reports it."""
        if not self.enabled:
            return fn()
        if self.is_main:
            try:
                value = fn()
            except BaseException as e:
                self.broadcast(("error", _relayable(e)))
                raise
            self.broadcast(("ok", value))
            return value
        received: tuple[str, Any] = self.broadcast(("waiting", None))
        status, payload = received
        if status == "error":
            mark_relayed(payload)
            raise payload
        return payload

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Give every process rank 0's buffers of `module` (BatchNorm running statistics: each process updates its
        own from its batches after DistributedDataParallel broadcasts rank 0's before each forward pass)."""
        if not self.enabled:
            return
        import torch

        with torch.no_grad():
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def barrier(self) -> None:
        """Wait until every process gets here (up to PICSIFT_DIST_WAIT seconds: rank 0 may be working alone)."""
        if self.enabled:
            import torch

            torch.distributed.barrier(group=self.waits)

    # ---- sharding and the model --------------------------------------------------------------------------------

    def shard(self) -> slice:
        """This process's items of a sequence (rank, rank + world_size, ...; a view of a NumPy array): disjoint,
        together all of it; for evaluating a split once across the processes and summing the counts."""
        return slice(self.rank, None, self.world_size)

    def wrap(self, model: torch.nn.Module, *, find_unused_parameters: bool = False) -> torch.nn.Module:
        """`model` in DistributedDataParallel (gradients averaged over the processes in backward; the weights
        and buffers start as rank 0's); the model itself in one process."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


SINGLE = Dist()


def per_process_batch(global_batch: int, world_size: int) -> int:
    """The batch each of `world_size` processes takes so that together they take at least `global_batch` images
    per step (`--batch-size` is per process; a recipe's own default is split this way)."""
    return max(1, -(-global_batch // max(1, world_size)))


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(f"${name} is not set: start several processes with torchrun, which sets it")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"${name}={raw!r}: expected a whole number (torchrun sets it)") from None


def env_rank() -> int:
    """This process's RANK as torchrun set it; 0 without torchrun (or a value that is not a number)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def from_env() -> Dist | None:
    """The Dist that torchrun's variables describe (no device or backend yet), or None when WORLD_SIZE is unset
    or 1. ConfigError for values that cannot be (a rank outside the world, no MASTER_ADDR)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return None
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise ConfigError(f"RANK={rank}, LOCAL_RANK={local_rank}: expected 0 <= RANK < WORLD_SIZE={world}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(f"WORLD_SIZE={world} but ${name} is not set: start the processes with torchrun")
    return Dist(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world)


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_MINUTES * 60):  # "nan" and "inf" parse as floats
        raise ConfigError(f"${name}={raw[:40]!r}: expected a finite number of seconds above 0 (at most a year)")
    return value


def timeout_s() -> float:
    """Seconds a process waits in a collective while training (and for the group to form) before giving up:
    $PICSIFT_DIST_TIMEOUT, else DEFAULT_TIMEOUT_S. ConfigError for a value that is not a positive number."""
    return _seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def wait_s() -> float:
    """Seconds a process waits for rank 0's work alone (`Dist.share`, `Dist.barrier`) before giving up:
    $PICSIFT_DIST_WAIT, else DEFAULT_WAIT_S (never less than timeout_s()). ConfigError as for timeout_s."""
    return max(_seconds(WAIT_ENV, DEFAULT_WAIT_S), timeout_s())


def device_for(requested: str, local_rank: int) -> torch.device:
    """The device of the process with `local_rank` on its machine: `cuda:LOCAL_RANK` for auto or cuda when a CUDA
    GPU is there (an index given with cuda:N is replaced by the local rank: one GPU per process), else the CPU.
    ConfigError for cuda without a GPU, or for mps (not a DistributedDataParallel device)."""
    import torch

    from picsift.device import select_device

    kind = requested.split(":")[0]
    if kind == "mps":
        raise ConfigError("--device mps cannot train in several processes: use --device cpu (gloo) or CUDA GPUs")
    if kind == "cpu":
        return torch.device("cpu")
    if kind not in ("auto", "cuda"):
        select_device(requested)  # raises ConfigError naming the device
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} has no GPU of its own: this machine has {torch.cuda.device_count()}; "
                "start at most that many processes per node (--nproc_per_node)"
            )
        return torch.device("cuda", local_rank)
    if kind == "cuda":
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available")
    return torch.device("cpu")


def mark_relayed(error: BaseException) -> None:
    """Mark `error` as one rank 0 raises and reports too (this process need not report it)."""
    setattr(error, RELAYED, True)


def is_relayed(error: BaseException) -> bool:
    """True for an error this process raised only because rank 0 raised (and reported) it."""
    return bool(getattr(error, RELAYED, False))


def _relayable(error: BaseException) -> BaseException:
    """`error` if it survives pickling, else a DistributedError with its message (picsift's typed errors keep
    their type where they can)."""
    try:
        copy = pickle.loads(pickle.dumps(error))
        if isinstance(copy, BaseException):
            return copy
    except Exception:  # an error holding something unpicklable, or whose __init__ takes other arguments
        pass
    kind = type(error) if isinstance(error, PicsiftError) else DistributedError
    try:
        return kind(str(error))
    except Exception:
        return DistributedError(str(error))


def _is_comm_failure(error: BaseException) -> bool:
    """An error from a collective: another process died or stopped answering, or this one timed out waiting."""
    import torch

    if isinstance(error, torch.distributed.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(hint in text for hint in _COMM_FAILURE_HINTS)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


@contextmanager
def _rank0_speaks(d: Dist) -> Iterator[None]:
    """On every rank but 0: picsift's log records below ERROR and progress bars off, restored afterwards."""
    if d.is_main:
        yield
        return
    logger = logging.getLogger("picsift")
    level, bars = logger.level, progress.enabled()
    logger.setLevel(logging.ERROR)
    progress.enable(False)
    try:
        yield
    finally:
        logger.setLevel(level)
        progress.enable(bars)


@contextmanager
def process_group(requested_device: str = "auto") -> Iterator[Dist]:
    """Join the process group torchrun's variables describe, yield this process's Dist, and leave the group on
    the way out; without those variables (or with WORLD_SIZE 1) yield SINGLE and do nothing.

    The backend follows the device: NCCL on `cuda:LOCAL_RANK`, gloo on the CPU (see `device_for`); a second,
    gloo group with the `wait_s()` timeout carries `Dist.share` and `Dist.barrier`. Raises ConfigError for a device
    that cannot be used, DistributedError when the group does not form within `timeout_s()` or when a collective
    fails inside the block (another process died or stopped answering).
    """
    found = from_env()
    if found is None:
        yield SINGLE
        return
    import torch

    device = device_for(requested_device, found.local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    wait, solo = timeout_s(), wait_s()
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        torch.distributed.init_process_group(
            backend, rank=found.rank, world_size=found.world_size, timeout=timedelta(seconds=wait)
        )
        waits = torch.distributed.new_group(backend="gloo", timeout=timedelta(seconds=solo))
    except (RuntimeError, ValueError) as e:
        raise DistributedError(
            f"rank {found.rank} of {found.world_size}: the processes did not all join at {where} within {wait:.0f} s "
            f"({_first_line(e)}); start all {found.world_size} with the same torchrun settings, or raise "
            f"${TIMEOUT_ENV}"
        ) from None
    d = Dist(found.rank, found.local_rank, found.world_size, found.local_world_size, backend, device, waits)
    log.info("rank %d of %d on %s (%s)", d.rank, d.world_size, device, backend)
    try:
        with _rank0_speaks(d):
            yield d
    except BaseException as e:
        if is_relayed(e) or not _is_comm_failure(e):
            raise
        raise DistributedError(
            f"rank {d.rank} of {d.world_size}: another process of this run failed or stopped answering "
            f"({_first_line(e)}); its own error says why (torchrun names the first rank that failed). A process "
            f"that is slow rather than gone gets {wait:.0f} s while training (${TIMEOUT_ENV}), {solo:.0f} s while "
            f"rank 0 works alone (${WAIT_ENV})"
        ) from None
    finally:
        with contextlib.suppress(Exception):  # leaving a group that already broke: nothing more to do
            torch.distributed.destroy_process_group()
