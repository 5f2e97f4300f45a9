"""Shared fixtures; the helpers they use live in the `support` package (tests/support)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.images import DATASETS, require, write_digits


@pytest.fixture
def datasets() -> Path:
    require((DATASETS / "cifar10").is_dir(), f"datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    return write_digits(tmp_path / "digits")


# Browser fixtures (chromium_path skips before anything starts when chromium or playwright is missing).
from support.browser import chromium_path, page  # noqa: E402, F401
