"""`picsift features`, `compare` and `cluster` from the command line: JSON output, files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from support.features import make_workspace


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.stdout


def test_features_command_reuses_the_cache(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=5, classes=2)
    code, out = invoke("features", "-w", str(ws.root), "--extractor", "lbp", "--json")
    first = json.loads(out)
    assert code == 0 and first["images"] == 10 and first["dim"] == 160 and first["computed"] == 10
    code, out = invoke("features", "-w", str(ws.root), "--extractor", "lbp", "--json", "--out", str(tmp_path / "f.npz"))
    second = json.loads(out)
    assert second["computed"] == 0 and second["cached"] == 10 and (tmp_path / "f.npz").is_file()
    code, _ = invoke("features", "-w", str(ws.root), "--extractor", "hgo")
    assert code == 2


def test_compare_ranks_candidates_on_one_split(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=15, classes=3, split_every=5)
    code, out = invoke("compare", "-w", str(ws.root), "--models", "svm:hog,knn:lbp,decision-tree", "--json")
    assert code == 0, out
    board = json.loads(out)
    rows = board["leaderboard"]
    assert [r["candidate"] for r in rows if "error" not in r] and len(rows) == 3
    assert board["split"] == "test" and all(r["n_eval"] == board["n_eval"] for r in rows)
    accs = [r["accuracy"] for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert rows[0]["accuracy"] >= 0.8 and all(r["model_bytes"] > 0 for r in rows)
    page = Path(board["html"]).read_text()
    assert "data:image/png;base64," in page and "svm:hog" in page
    assert json.loads(Path(board["json"]).read_text())["leaderboard"] == rows


def test_compare_refuses_bad_candidates(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=3, classes=2)
    code, _ = invoke("compare", "-w", str(ws.root), "--models", "fastcnn:hog")
    assert code == 2
    code, _ = invoke("compare", "-w", str(ws.root), "--models", "svm:hogg")
    assert code == 2


def test_cluster_command(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=8, classes=2)
    code, out = invoke("cluster", "-w", str(ws.root), "--k", "2", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["k"] == 2 and sum(c["size"] for c in summary["clusters"]) == 16
    assert Path(summary["html"]).is_file() and summary["metrics"]["purity"] >= 0.5
    code, _ = invoke("cluster", "-w", str(ws.root), "--k", "99")
    assert code == 2
    code, _ = invoke("cluster", "-w", str(ws.root), "--k", "2", "--auto")
    assert code == 2
