"""The layering the code promises: `import picsift` / `picsift.api` stay light, the CLI reaches the stages only
through `picsift.api`, and test modules share helpers through `tests/support`, never through one another."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import picsift.api
from support.images import REPO, write_digits

HEAVY = ("torch", "torchvision", "sklearn", "fastapi", "uvicorn", "onnxruntime", "timm")
# cli/ may import these picsift modules; common.py (the shared plumbing) also formats skipped images and sizes.
CLI_ALLOWED = ("picsift.api", "picsift.errors", "picsift.config", "picsift.cli")
COMMON_ALLOWED = (*CLI_ALLOWED, "picsift.jsonio", "picsift.progress", "picsift.data.available", "picsift.compare")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def test_importing_picsift_and_its_api_loads_no_heavy_library() -> None:
    code = f"import sys, picsift, picsift.api; print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _picsift_imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("picsift"):
            names += [node.module] if node.module != "picsift" else [f"picsift.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith("picsift")]
    return names


def test_cli_modules_import_stages_only_through_the_api() -> None:
    bad = {}
    for path in sorted((REPO / "src" / "picsift" / "cli").glob("*.py")):
        allowed = COMMON_ALLOWED if path.name == "common.py" else CLI_ALLOWED
        found = [m for m in _picsift_imports(path) if not any(m == a or m.startswith(a + ".") for a in allowed)]
        if found:
            bad[path.name] = found
    assert bad == {}


def test_every_api_function_takes_the_workspace_as_a_keyword() -> None:
    import inspect

    for name in picsift.api.__all__:
        obj = getattr(picsift.api, name)
        if inspect.isfunction(obj) and "workspace" in inspect.signature(obj).parameters:
            kind = inspect.signature(obj).parameters["workspace"].kind
            assert kind is inspect.Parameter.KEYWORD_ONLY, name


def test_no_test_module_imports_another() -> None:
    tests = REPO / "tests"
    modules = {p.stem for p in tests.glob("*.py")}
    bad = {}
    for path in sorted(tests.rglob("*.py")):
        tree = ast.parse(path.read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        found = [m for m in imported if m.split(".")[0] in modules]
        if found:
            bad[str(path.relative_to(tests))] = found
    assert bad == {}


def test_status_answers_quickly_on_a_small_workspace(tmp_path: Path) -> None:
    """`picsift status --json` in a fresh process: its JSON, and the time it took (printed, not asserted)."""
    data = write_digits(tmp_path / "digits", per_class=3, classes=2)
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "picsift"]
    subprocess.run([*cmd, "import", str(data), "-w", str(ws), "--json"], env=_env(), check=True, capture_output=True)
    t0 = time.perf_counter()
    out = subprocess.run([*cmd, "status", "-w", str(ws), "--json"], env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["images"] == 6 and info["labeled"] == 6 and info["classes"] == ["0", "1"]
    code = f"import picsift; print(picsift.status(workspace={str(ws)!r}).images)"
    t1 = time.perf_counter()
    api = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    api_seconds = time.perf_counter() - t1
    assert api.stdout.strip() == "6"
    print(f"\nfresh process: `picsift status --json` {seconds:.2f}s, `picsift.status(...)` {api_seconds:.2f}s")
