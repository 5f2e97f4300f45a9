"""End to end: tiny workspace -> train (1 epoch) -> evaluate -> metrics.json, report.html, CLI; and predict."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import EvalConfig, TrainConfig
from picsift.errors import DatasetError
from picsift.evaluate import run as evaluate_run
from picsift.store import Workspace
from picsift.store.schema import Image, RunRecord
from support.images import write_digits


def make_workspace(root: Path, *, per_class: int, classes: int, with_test: bool) -> Workspace:
    """A workspace built straight through the catalog API: digits PNGs, labels from the folder name,
    splits per class by position (every 5th image test when `with_test`, the next one val)."""
    folder = write_digits(root / "digits", per_class=per_class, classes=classes)
    ws = Workspace.open(root / "ws", create=True)
    rows, labels = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for i, f in enumerate(sorted(class_dir.glob("*.png"))):
            data = f.read_bytes()
            width, height = PILImage.open(f).size
            split = "test" if with_test and i % 5 == 0 else ("val" if i % 5 == 1 else "train")
            rows.append(
                Image(
                    sha256=hashlib.sha256(data).hexdigest(),
                    path=str(f),
                    byte_size=len(data),
                    width=width,
                    height=height,
                    readable=True,
                    split=split,
                )
            )
            labels.append(class_dir.name)
    ws.catalog.add_images(rows)
    by_path = {r.path: r.id for r in ws.catalog.images(readable=None)}
    for row, label in zip(rows, labels, strict=True):
        ws.catalog.set_label(by_path[row.path], label, origin="import")
    return ws


def train_tiny(ws: Workspace) -> Path:
    from picsift import train

    return train.run(TrainConfig(workspace=ws.root, model="fastcnn", epochs=1, device="cpu")).run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    ws = make_workspace(tmp_path_factory.mktemp("eval"), per_class=20, classes=3, with_test=True)
    return ws, train_tiny(ws)


def test_evaluate_end_to_end(trained: tuple[Workspace, Path]) -> None:
    ws, run_dir = trained
    result = evaluate_run(EvalConfig(workspace=ws.root, device="cpu"))
    assert result.run_dir == run_dir
    data = json.loads((run_dir / "data.json").read_text())
    assert result.split == "test" and result.n_images == len(data["test_ids"]) == 12

    m = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "accuracy",
        "top_k_accuracy",
        "per_class",
        "macro_avg",
        "weighted_avg",
        "confusion_matrix",
        "ece",
        "reliability",
        "nll",
        "split",
        "run_id",
        "model",
        "top_confusions",
        "temperature",
    ):
        assert key in m, key
    assert m["split"] == "test" and m["classes"] == ["0", "1", "2"]
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == m["n"] == 12
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert [m["per_class"][c]["support"] for c in m["classes"]] == cm.sum(axis=1).tolist()
    assert 0.0 <= m["ece"] <= 1.0 and len(m["reliability"]) == 15
    assert sum(b["count"] for b in m["reliability"]) == 12

    # predictions.csv agrees with the confusion matrix
    with result.predictions_path.open() as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 12
    assert sum(int(p["correct"]) for p in preds) == np.trace(cm)

    html = result.report_path.read_text()
    assert "Training curves" in html and "Most confident mistakes" in html
    # Nothing is fetched from elsewhere; the only links out are each mistake's into the labelling app.
    assert not re.search(r'src\s*=\s*["\']?(https?:)?//', html)
    n_wrong = int(cm.sum() - np.trace(cm))
    outside = re.findall(r'href\s*=\s*["\']?((?:https?:)?//[^"\' >]*)', html)
    assert len(outside) == min(n_wrong, 24) and all(
        re.fullmatch(r"http://127\.0\.0\.1:8765/#image=\d+", h) for h in outside
    )
    assert len(re.findall(r'src="data:image/jpeg;base64,', html)) == min(n_wrong, 24)

    # recorded in the catalog's runs table, next to training's own metrics
    with ws.catalog.session() as s:
        record = s.get(RunRecord, run_dir.name)
        assert record is not None
        assert record.metrics["evaluation"]["accuracy"] == pytest.approx(m["accuracy"])
        assert record.metrics["evaluation"]["split"] == "test"
        assert "best_val_acc" in record.metrics


def test_forced_val_split_and_skipped_images(trained: tuple[Workspace, Path]) -> None:
    ws, run_dir = trained
    data = json.loads((run_dir / "data.json").read_text())
    # An image excluded after training is left out, and the count says so.
    action = ws.catalog.exclude({data["val_ids"][0]: "blurry"}, kind="test")
    try:
        result = evaluate_run(EvalConfig(workspace=ws.root, run=run_dir.name, split="val", device="cpu"))
    finally:
        ws.catalog.undo(action)
    assert result.split == "val" and result.metrics["split"] == "val" and result.split_reason == "asked for"
    assert result.n_images == len(data["val_ids"]) - 1
    excluded_class = ws.catalog.image(data["val_ids"][0]).label
    assert result.metrics["skipped"] == {excluded_class: {"count": 1, "reason": "excluded", "reasons": {"excluded": 1}}}
    assert result.metrics["catalog_changed_since_training"] is True


def test_cli_json_prints_one_json_object(trained: tuple[Workspace, Path]) -> None:
    ws, run_dir = trained
    result = CliRunner().invoke(build_app(), ["evaluate", "--workspace", str(ws.root), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert out["split"] == "test" and out["run_id"] == run_dir.name
    assert Path(out["report_path"]).is_file() and Path(out["metrics_path"]).is_file()
    assert out["accuracy"] == json.loads((run_dir / "metrics.json").read_text())["accuracy"]


def test_cli_table_and_run_folder_without_workspace(trained: tuple[Workspace, Path]) -> None:
    _, run_dir = trained
    # --run as a folder: the workspace is the one the folder lives in.
    result = CliRunner().invoke(
        build_app(), ["evaluate", "--run", str(run_dir), "--device", "cpu"], env={"PICSIFT_WORKSPACE": None}
    )
    assert result.exit_code == 0, result.output
    assert "split: test" in result.stdout
    assert "macro F1" in result.stdout and "ECE" in result.stdout
    assert "report.html" in result.stdout


def test_cli_errors_are_one_line(tmp_path: Path, trained: tuple[Workspace, Path]) -> None:
    ws, _ = trained
    runner = CliRunner()
    bad = runner.invoke(build_app(), ["evaluate", "--workspace", str(ws.root), "--run", "nope"])
    assert bad.exit_code == 2 and "no run 'nope'" in bad.stderr
    bad = runner.invoke(build_app(), ["evaluate", "--workspace", str(ws.root), "--split", "train"])
    assert bad.exit_code == 2 and "--split must be" in bad.stderr
    empty = Workspace.open(tmp_path / "empty", create=True)
    assert empty.catalog.count() == 0  # creates the catalog: a workspace with no runs
    bad = runner.invoke(build_app(), ["evaluate", "--workspace", str(empty.root)])
    assert bad.exit_code == 2 and "picsift train" in bad.stderr


def test_no_test_split_falls_back_to_val(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=10, classes=2, with_test=False)
    run_dir = train_tiny(ws)
    result = evaluate_run(EvalConfig(workspace=ws.root, device="cpu"))
    assert result.split == "val" and "no test split" in result.split_reason and "optimistic" in result.split_reason
    assert result.n_images == len(json.loads((run_dir / "data.json").read_text())["val_ids"]) == 4
    assert json.loads((run_dir / "metrics.json").read_text())["split"] == "val"
    with pytest.raises(DatasetError, match="no test images"):
        evaluate_run(EvalConfig(workspace=ws.root, split="test", device="cpu"))
    out = CliRunner().invoke(build_app(), ["evaluate", "--workspace", str(ws.root), "--device", "cpu"])
    assert out.exit_code == 0 and "split: val (the run has no test split" in out.stdout


# ---- predict: files, folders, globs, unreadable files --------------------------------------------
def test_predict_files_folders_globs_and_unreadable(tmp_path: Path, trained: tuple[Workspace, Path]) -> None:
    ws, run_dir = trained
    src = ws.catalog.images()[0].path
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(src, folder / "a.png")
    shutil.copy(src, folder / "sub" / "b.PNG")
    (folder / "broken.jpg").write_bytes(b"plain text with a .jpg name")
    data = Path(src).read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image, skipped by extension")
    literal = tmp_path / "photo[1].png"  # glob characters in a real name: taken literally
    shutil.copy(src, literal)
    runner = CliRunner()
    args = [
        "predict",
        str(folder),
        str(folder / "sub" / "*.PNG"),
        str(tmp_path / "missing.png"),
        str(literal),
        "--workspace",
        str(ws.root),
        "--json",
        "--top-k",
        "2",
    ]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)["predictions"]}
    assert set(rows) == {"a.png", "b.PNG", "broken.jpg", "cut.png", "empty.png", "missing.png", "photo[1].png"}
    for name in ("a.png", "b.PNG", "photo[1].png"):
        assert rows[name]["label"] in {"0", "1", "2"} and len(rows[name]["top_k"]) == 2
    assert "not an image" in rows["broken.jpg"]["error"]
    assert "truncated" in rows["cut.png"]["error"]
    assert "empty" in rows["empty.png"]["error"]
    assert rows["missing.png"]["error"] == "no such file"

    csv_path = tmp_path / "out.csv"
    result = runner.invoke(build_app(), ["predict", str(folder), "--run", str(run_dir), "--csv", str(csv_path)])
    assert result.exit_code == 0, result.output
    with csv_path.open() as f:
        assert len(list(csv.DictReader(f))) == 5

    result = runner.invoke(build_app(), ["predict", str(folder / "*.gif"), "--workspace", str(ws.root)])
    assert result.exit_code == 2 and "matched no files" in result.stderr
    (tmp_path / "nothing").mkdir()
    result = runner.invoke(build_app(), ["predict", str(tmp_path / "nothing"), "--workspace", str(ws.root)])
    assert result.exit_code == 2 and "no image files" in result.stderr


def test_tta_averages_views_and_is_recorded(trained: tuple[Workspace, Path]) -> None:
    ws, run_dir = trained
    plain = evaluate_run(EvalConfig(workspace=ws.root, run=run_dir.name, device="cpu"))
    assert "test-time augmentation" not in (run_dir / "report.html").read_text()
    with_tta = evaluate_run(EvalConfig(workspace=ws.root, run=run_dir.name, device="cpu", tta=True))
    assert plain.metrics["tta_views"] == [] and len(with_tta.metrics["tta_views"]) >= 2
    views = ", ".join(with_tta.metrics["tta_views"])  # the report says the numbers are TTA's
    assert f"With test-time augmentation: probabilities averaged over {views}." in (run_dir / "report.html").read_text()
    # Averaging over flipped views changes the probabilities, so the NLL differs.
    assert with_tta.metrics["nll"] != pytest.approx(plain.metrics["nll"], abs=1e-9)
