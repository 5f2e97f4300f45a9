"""Running picsift in several real processes: under torchrun, or as ranks started by hand (to kill one)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.images import REPO


def free_port() -> int:
    """A TCP port free on localhost now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a picsift process started from the tests: this checkout's sources on the path, one CPU
    thread each (torchrun sets OMP_NUM_THREADS=1 too), torchrun's own variables of the test process removed."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    env.update(PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO / 'tests'}", PICSIFT_THREADS="1", **extra)
    return env


def torchrun(args: list[str], nproc: int = 2, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m torch.distributed.run --standalone --nproc_per_node N -m picsift ARGS`: the command users run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*cmd, "-m", "picsift", *args], capture_output=True, text=True, env=process_env(**env), timeout=timeout
    )


def picsift(args: list[str], timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m picsift ARGS` in one process."""
    return subprocess.run(
        [sys.executable, "-m", "picsift", *args],
        capture_output=True,
        text=True,
        env=process_env(**env),
        timeout=timeout,
    )


def start_rank(
    rank: int, world: int, port: int, args: list[str], log: Path, module: str = "picsift", **env: str
) -> subprocess.Popen[str]:
    """One rank of a run started by hand (`python -m MODULE ARGS`), with the variables torchrun would set; stdout
    and stderr go to `log`."""
    ranks = {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    out = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=process_env(**ranks, **env),
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 0.2 s; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def one_json(stdout: str) -> dict[str, Any]:
    """The single JSON object a `--json` command printed (fails if there are two, as from two ranks)."""
    doc, end = json.JSONDecoder().raw_decode(stdout.strip())
    assert stdout.strip()[end:].strip() == "", f"more than one JSON object on stdout: {stdout!r}"
    assert isinstance(doc, dict)
    return doc
