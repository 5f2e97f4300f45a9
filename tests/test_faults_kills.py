"""The fault benchmark's scenarios with one kill (or one disk round) each: real `picsift` commands and servers
SIGKILLed at a random moment, then checked and run again (`python bench/faults.py` runs them 20 times).

Each takes 15-90 s here (process starts, a training, an export), hence slow."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from support.faults import bench_module
from support.images import require

KILLS = [
    "import-kill",
    "archive-kill",
    "label-kill",
    "feedback-kill",
    "clean-apply-kill",
    "import-labels-kill",
    "export-kill",
    "export-clean-kill",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", KILLS)
def test_a_killed_command_loses_nothing_acknowledged_and_runs_again(name: str, tmp_path: Path) -> None:
    fn, _ = bench_module("faults").scenarios(quick=True)[name]
    out = fn(tmp_path, 1, random.Random(1))
    assert (out.acknowledged_lost, out.catalogs_corrupted, out.half_done) == (0, 0, 0), out.notes
    assert out.resumes_ok == out.kills, out.notes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["disk-full", "read-only"])
def test_a_full_or_read_only_disk_is_one_clear_line_and_keeps_what_was_stored(name: str, tmp_path: Path) -> None:
    why = bench_module("faultkit").can_mount()
    require(why is None, why or "")
    fn, _ = bench_module("faults").scenarios(quick=True)[name]
    out = fn(tmp_path, 1, random.Random(3))
    assert out.kills >= 4 and out.clear_errors == out.kills, out.notes
    assert (out.acknowledged_lost, out.catalogs_corrupted, out.resumes_ok) == (0, 0, 1), out.notes
