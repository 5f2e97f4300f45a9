"""The browser tests on a machine without chromium (or without playwright): `make test` must not error.

Each case runs tests/test_label_browser.py in a real pytest subprocess with the browser hidden: every test skips
with the reason, before it builds a workspace or starts a server, and under PICSIFT_REQUIRE_ALL=1 (CI) every one
fails instead, naming the missing resource.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from support.images import REPO

BROWSER_TESTS = REPO / "tests" / "test_label_browser.py"


def browser_test_names() -> list[str]:
    tree = ast.parse(BROWSER_TESTS.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def run_browser_tests(tmp_path: Path, require_all: bool, chromium: Path, extra_path: Path | None = None) -> tuple:
    """(exit code, output, {outcome: count} from the summary line, files the run left under its temp folder)."""
    env = {k: v for k, v in os.environ.items() if k != "PICSIFT_REQUIRE_ALL"}
    env["PICSIFT_CHROMIUM"] = str(chromium)
    if require_all:
        env["PICSIFT_REQUIRE_ALL"] = "1"
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO / "src"), env.get("PYTHONPATH", "")])
    basetemp = tmp_path / ("required" if require_all else "optional")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + ["--basetemp", str(basetemp), str(BROWSER_TESTS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    last = out.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", last)}
    left = [p for p in basetemp.rglob("*") if p.is_file()] if basetemp.exists() else []
    return proc.returncode, out, counts, left


def test_without_chromium_every_browser_test_skips_with_the_reason_before_starting_anything(tmp_path: Path) -> None:
    n = len(browser_test_names())
    assert n >= 4
    missing = tmp_path / "no-chromium"
    code, out, counts, left = run_browser_tests(tmp_path, require_all=False, chromium=missing)
    assert code == 0, out
    assert counts == {"skipped": n}, out
    reasons = re.findall(r"^SKIPPED \[\d+\] .*?: (.*)$", out, flags=re.M)
    assert len(reasons) == n and set(reasons) == {
        f"chromium not found at {missing} (apt-get install chromium, or set PICSIFT_CHROMIUM)"
    }, out
    assert left == []  # no workspace built, no image written: the check came first

    code, out, counts, left = run_browser_tests(tmp_path, require_all=True, chromium=missing)
    assert code != 0
    assert counts in ({"errors": n}, {"error": n}), out
    assert out.count(f"required resource missing (PICSIFT_REQUIRE_ALL=1): chromium not found at {missing}") >= n
    assert left == []


def test_without_playwright_every_browser_test_skips_with_the_reason(tmp_path: Path) -> None:
    # A playwright package that cannot be imported shadows the real one; chromium itself is "there".
    shadow = tmp_path / "shadow"
    (shadow / "playwright").mkdir(parents=True)
    (shadow / "playwright" / "__init__.py").write_text("raise ImportError('No module named playwright')\n")
    present = Path(sys.executable)
    n = len(browser_test_names())
    code, out, counts, left = run_browser_tests(tmp_path, require_all=False, chromium=present, extra_path=shadow)
    assert code == 0, out
    assert counts == {"skipped": n}, out
    reasons = re.findall(r"^SKIPPED \[\d+\] .*?: (.*)$", out, flags=re.M)
    assert len(reasons) == n and all("the playwright package cannot be imported" in r for r in reasons), out
    assert left == []
    code, out, counts, _ = run_browser_tests(tmp_path, require_all=True, chromium=present, extra_path=shadow)
    assert code != 0 and counts in ({"errors": n}, {"error": n}), out
    assert "required resource missing (PICSIFT_REQUIRE_ALL=1): the playwright package cannot be imported" in out
