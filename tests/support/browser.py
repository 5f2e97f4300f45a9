"""Real-browser test helpers: Debian's chromium (or $PICSIFT_CHROMIUM) driven by Playwright.

`chromium_path` skips a test (fails under PICSIFT_REQUIRE_ALL=1) before anything starts when chromium or the
playwright package is missing; `page` is a 1280x800 headless page; `shot` keeps a screenshot when
PICSIFT_SCREENSHOTS_DIR is set. Test modules import the fixtures they use.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from pathlib import Path

import pytest

from support.images import require

CHROMIUM_ENV = "PICSIFT_CHROMIUM"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chromium_path() -> Path:
    """The chromium executable ($PICSIFT_CHROMIUM, else Debian's), once it and the playwright package are known
    to be there: skips (fails under PICSIFT_REQUIRE_ALL=1) otherwise. Every browser fixture depends on it."""
    path = Path(os.environ.get(CHROMIUM_ENV) or DEBIAN_CHROMIUM)
    require(
        path.is_file() and os.access(path, os.X_OK),
        f"chromium not found at {path} (apt-get install chromium, or set {CHROMIUM_ENV})",
    )
    try:
        importlib.import_module("playwright.sync_api")
        playwright_error = ""
    except ImportError as e:
        playwright_error = str(e)
    require(
        not playwright_error, f"the playwright package cannot be imported ({playwright_error}): pip install playwright"
    )
    return path


@pytest.fixture
def page(chromium_path: Path, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium_path),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        pg = context.new_page()
        pg.set_default_timeout(20000)
        yield pg
        context.close()


def settled(page) -> None:
    """Wait until the app has no request in flight (it counts them in body[data-pending])."""
    page.wait_for_selector("body[data-pending='0']", state="attached")


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def shot(page, name: str) -> None:
    out = os.environ.get("PICSIFT_SCREENSHOTS_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name))
