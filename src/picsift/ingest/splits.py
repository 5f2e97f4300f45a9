"""Deterministic, stratified train/val/test assignment.

Each image's place is decided by hashing (seed, content hash) and sorting within its class, so the
result depends only on the seed and on *which* images are split, never on file order, platform or
thread scheduling; copies of the same bytes can therefore never straddle two splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from picsift.config import check_number
from picsift.errors import ConfigError

SPLITS = ("train", "val", "test")
# Folder and manifest spellings of each split.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def normalize_split(value: str) -> str | None:
    """'Validation' -> 'val'; None when `value` is not a split name."""
    return SPLIT_ALIASES.get(value.strip().lower())


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """ConfigError unless each fraction is in [0, 1) and together they leave images for training."""
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        check_number(f, name, low=0, high=1, high_open=True)
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"val_fraction + test_fraction must leave images for training, got {val_fraction} + {test_fraction}"
        )


def _order_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def stratified_split(
    groups: Mapping[str | None, Sequence[str]],
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> dict[str, str]:
    """groups: class -> content hashes (unique within the mapping) -> {hash: "train"|"val"|"test"}.

    Per class, round(n * fraction) images go to val and to test, always leaving at least one image
    in train; classes of one or two images stay entirely in train.
    """
    check_fractions(val_fraction, test_fraction)
    out: dict[str, str] = {}
    for keys in groups.values():
        ordered = sorted(set(keys), key=lambda k: _order_key(seed, k))
        n = len(ordered)
        n_test = round(n * test_fraction) if n >= 3 else 0
        n_val = round(n * val_fraction) if n >= 3 else 0
        while n_test + n_val >= n and (n_test or n_val):
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        for i, key in enumerate(ordered):
            out[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out
