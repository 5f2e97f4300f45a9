"""Integration on real data: a small CIFAR-10 subset, imported from a CSV manifest with its own train/test
split -> train 2 epochs -> evaluate (must pick the test split) -> predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsift.cli import build_app

CLASSES = ("airplane", "frog", "truck")


@pytest.mark.datasets
def test_import_train_evaluate_predict_cifar_subset(datasets: Path, tmp_path: Path) -> None:
    cifar = datasets / "cifar10"
    lines = ["path,label,split"]
    for split, n in (("train", 60), ("test", 15)):
        for c in CLASSES:
            for f in sorted((cifar / split / c).glob("*.jpg"))[:n]:
                lines.append(f"{f.resolve()},{c},{split}")
    manifest = tmp_path / "subset.csv"
    manifest.write_text("\n".join(lines) + "\n")
    ws = tmp_path / "ws"
    runner = CliRunner()

    def cli(*args: str) -> dict:
        result = runner.invoke(build_app(), [*args, "--workspace", str(ws), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    cli("import", str(manifest))
    cli("train", "--model", "fastcnn", "--epochs", "2", "--device", "cpu")
    m = cli("evaluate", "--device", "cpu")
    assert m["split"] == "test" and m["n"] == 45
    assert m["classes"] == sorted(CLASSES)
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 45 and cm.sum(axis=1).tolist() == [15, 15, 15]
    assert m["accuracy"] == pytest.approx(np.trace(cm) / 45)
    report = Path(m["report_path"]).read_text()
    assert "Most confident mistakes" in report and "data:image/png;base64," in report

    test_files = sorted((cifar / "test" / "frog").glob("*.jpg"))[:3]
    preds = cli("predict", *map(str, test_files), "--top-k", "3")["predictions"]
    assert [p["path"] for p in preds] == [str(f) for f in test_files]
    for p in preds:
        assert p["label"] in CLASSES
        assert sum(t["probability"] for t in p["top_k"]) == pytest.approx(1.0, abs=1e-4)
