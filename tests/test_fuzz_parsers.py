"""Every parser, fed hostile input by Hypothesis: a valid result or a picsift typed error naming the file (or
flag), never another exception. PICSIFT_FUZZ_EXAMPLES raises the number of inputs per parser (bench/fuzz_bench.py
runs many more)."""

from __future__ import annotations

import os

import pytest

from support.fuzz import TARGETS, Target, fuzz

EXAMPLES = int(os.environ.get("PICSIFT_FUZZ_EXAMPLES", "60"))


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_parser_gives_a_result_or_a_clear_typed_error(target: Target) -> None:
    stats = fuzz(target, EXAMPLES)
    assert stats.tried == EXAMPLES or stats.tried > 0
    assert stats.crashes == [] and stats.unclear == []
