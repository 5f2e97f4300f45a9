"""Shared fixtures; the helpers they use live in the `support` package (tests/support)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.images import DATASETS, require, write_digits
from support.postgres import CATALOGS, NOT_AVAILABLE, Server, fresh_database, postgres_server

if TYPE_CHECKING:
    from picsift.store import Workspace


@pytest.fixture
def datasets() -> Path:
    require((DATASETS / "cifar10").is_dir(), f"datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    return write_digits(tmp_path / "digits")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server | None]:
    """The session's PostgreSQL server ($PICSIFT_POSTGRES_URL or a throwaway cluster), None when there is none.
    Started only when a test asks for it."""
    with postgres_server() as server:
        yield server


@contextmanager
def _catalog(request: pytest.FixtureRequest, backend: str) -> Iterator[str | None]:
    """None for "sqlite" (the workspace's own catalog.sqlite); for "postgresql" the URL of a new, empty database
    dropped afterwards (skipped, or failed under PICSIFT_REQUIRE_ALL=1, without a server)."""
    if backend == "sqlite":
        yield None
        return
    server: Server | None = request.getfixturevalue("postgres")
    require(server is not None, NOT_AVAILABLE)
    assert server is not None
    with fresh_database(server.url) as url:
        yield url


@pytest.fixture(params=CATALOGS)
def catalog_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each catalog back end in turn: None (the workspace's own catalog.sqlite), then the URL of a new, empty
    PostgreSQL database dropped after the test (skipped, or failed under PICSIFT_REQUIRE_ALL=1, without a
    server). Pass it as `Workspace.open(..., create=True, db_url=catalog_url)`."""
    with _catalog(request, request.param) as url:
        yield url


@pytest.fixture
def ws(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    """The labelling tests' workspace (`support.label.make_workspace`): 3 classes x 8 digit PNGs, ids 1-8 / 9-16 /
    17-24, the first 3 of each class labelled; on SQLite, or on each catalog back end in a module that says
    `pytestmark = pytest.mark.parametrize("ws", CATALOGS, indirect=True)`."""
    from support.label import make_workspace

    with _catalog(request, getattr(request, "param", "sqlite")) as url:
        w = make_workspace(tmp_path, db_url=url)
        yield w
        w.close()


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
