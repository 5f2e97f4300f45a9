"""A benchmark's `--quick` smoke run never overwrites the measured results: every bench script that takes
`--quick` names its output file through benchutil.results_path (`<name>_quick.json` under --quick)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _benchutil():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("benchutil", BENCH / "benchutil.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_path_keeps_quick_runs_apart() -> None:
    results_path = _benchutil().results_path
    assert results_path("import_bench", False) == BENCH / "results" / "import_bench.json"
    assert results_path("import_bench", True) == BENCH / "results" / "import_bench_quick.json"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name]


def test_every_bench_script_with_quick_writes_through_results_path() -> None:
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name != "benchutil.py")
    with_quick = [p for p in scripts if '"--quick"' in p.read_text()]
    assert {"import_bench.py", "serve_bench.py", "train_cifar10.py", "faults.py"} <= {p.name for p in with_quick}
    for path in with_quick:
        tree = ast.parse(path.read_text(), str(path))
        calls = _calls(tree, "results_path")
        assert calls, f"{path.name} takes --quick but does not name its results with results_path"
        for call in calls:  # the second argument is the run's --quick flag
            assert len(call.args) == 2 and "quick" in ast.unparse(call.args[1]), (path.name, ast.unparse(call))
        # and no results file is named by hand in the code that runs (a module constant left unused is no write)
        functions = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)]
        literal = [
            n.value
            for f in functions
            for n in ast.walk(f)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith(".json")
            and "/" not in n.value and not n.value.startswith(("checkpoint", "run", "metrics", "data", "bundle"))
        ]  # fmt: skip
        assert literal == [], (path.name, literal)
