"""The README's Python API example runs as written (a documentation test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_api_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    if match is None:
        pytest.fail("README's Python API section has no python example")
    return match.group(1)


def test_readme_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_api_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "1797" in out and "test" in out
    assert (tmp_path / "my-workspace" / "catalog.sqlite").exists()
    runs = list((tmp_path / "my-workspace" / "runs").glob("*/metrics.json"))
    assert len(runs) == 1
