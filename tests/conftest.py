"""Shared fixtures; the helpers they use live in the `support` package (tests/support)."""

from __future__ import annotations

import importlib.metadata
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


@pytest.fixture
def no_weights_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No weights package installed and empty Hugging Face / torch hub caches."""

    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
