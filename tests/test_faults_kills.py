"""Two of the fault benchmark's scenarios with one kill each: real `picsift` commands and servers
SIGKILLed at a random moment, then checked and run again (`python bench/faults.py` runs them 20 times).

Each takes 15-90 s here (process starts, a training, an export), hence slow."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from support.faults import bench_module

# Two representative scenarios in `make test` (acknowledged writes under concurrent clients; one transaction
# killed mid-way); `python bench/faults.py` runs every scenario, the disk faults too, many times.
KILLS = ["label-kill", "import-labels-kill"]


@pytest.mark.slow
@pytest.mark.parametrize("name", KILLS)
def test_a_killed_command_loses_nothing_acknowledged_and_runs_again(name: str, tmp_path: Path) -> None:
    fn, _ = bench_module("faults").scenarios(quick=True)[name]
    out = fn(tmp_path, 1, random.Random(1))
    assert (out.acknowledged_lost, out.catalogs_corrupted, out.half_done) == (0, 0, 0), out.notes
    assert out.resumes_ok == out.kills, out.notes
