"""Shared fixtures: tiny real image folders made on the fly, and the skip-or-fail policy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def require(condition: bool, reason: str) -> None:
    """Skip when a machine lacks an optional resource; fail instead under PICSIFT_REQUIRE_ALL=1 (CI)."""
    if condition:
        return
    if os.environ.get("PICSIFT_REQUIRE_ALL") == "1":
        pytest.fail(f"required resource missing (PICSIFT_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


@pytest.fixture
def datasets() -> Path:
    require((DATASETS / "cifar10").is_dir(), f"datasets not found at {DATASETS}")
    return DATASETS


def write_digits(root: Path, per_class: int = 30, classes: int = 3, size: int = 16, seed: int = 0) -> Path:
    """scikit-learn's digits as PNGs in folder-per-class layout (real, always available)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in range(classes):
        idx = np.flatnonzero(digits.target == c)[:per_class]
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for i in idx:
            img = (digits.images[i] / 16.0 * 255).astype(np.uint8)
            img = np.clip(img.astype(int) + rng.integers(0, 3, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img, "L").resize((size, size), Image.NEAREST).convert("RGB").save(
                root / str(c) / f"{i}.png"
            )
    return root


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    return write_digits(tmp_path / "digits")
