"""Classes the model never saw: training warns about them, evaluation records the images it could not score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from picsift.cli import build_app
from support.images import write_digits

torch.set_num_threads(1)

# (split, class, how many images): owl has test images only, dog has no validation image.
LAYOUT = [
    ("train", "cat", 8),
    ("train", "dog", 8),
    ("val", "cat", 2),
    ("test", "cat", 4),
    ("test", "dog", 5),
    ("test", "owl", 3),
]


def make_split_folders(root: Path, layout: list[tuple[str, str, int]] = LAYOUT) -> Path:
    """root/{train,val,test}/<class>/*.png from digits 0 (cat), 1 (dog) and 2 (owl) as `layout` says; no image
    used twice."""
    digits = write_digits(root / "digits", per_class=20, classes=3)
    source = {"cat": sorted((digits / "0").glob("*.png")), "dog": sorted((digits / "1").glob("*.png")),
              "owl": sorted((digits / "2").glob("*.png"))}  # fmt: skip
    out = root / "pets"
    for split, cls, n in layout:
        (out / split / cls).mkdir(parents=True)
        for f in source[cls][:n]:
            shutil.move(str(f), out / split / cls / f.name)
        source[cls] = source[cls][n:]
    return out


def test_train_warns_and_evaluate_records_unscored_classes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner = CliRunner()
    r = runner.invoke(build_app(), ["import", str(make_split_folders(tmp_path)), "-w", str(ws)])
    assert r.exit_code == 0, r.output
    assert "train 16, val 2, test 12" in r.stdout  # the folders' own splits

    r = runner.invoke(build_app(), ["train", "-w", str(ws), "--epochs", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        "warning: 1 class has no training images, so the model cannot predict it: owl (3 test); evaluation "
        "skips its images (add training images for it)",
        "warning: 1 class has training images but no validation images: dog; validation accuracy does not cover them",
    ]
    [run_dir] = (ws / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["classes"] == ["cat", "dog"] and (run["n_train"], run["n_val"], run["n_test"]) == (16, 2, 9)
    assert len(run["warnings"]) == 2
    assert len(json.loads((run_dir / "data.json").read_text())["test_ids"]) == 12  # owl's too, for evaluation

    r = runner.invoke(build_app(), ["evaluate", "-w", str(ws), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "split: test (the run has a test split), 9 images scored, 3 not scored" in r.stdout
    assert "not scored: owl: 3 (class not in the model (no training images))" in r.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["skipped"] == {
        "owl": {
            "count": 3,
            "reason": "class not in the model (no training images)",
            "reasons": {"class not in the model (no training images)": 3},
        }
    }
    assert metrics["n"] == 9 and sum(c["support"] for c in metrics["per_class"].values()) == 9
    assert set(metrics["per_class"]) == {"cat", "dog"}
    rows = (run_dir / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 9 and not any(",owl," in line for line in rows)


def test_every_split_reports_the_held_out_images_of_unseen_classes(tmp_path: Path) -> None:
    """owl has validation and test images but no training image: `--split val`, `--split test` and the default all
    count its images as not scored, and so does the comparison's scoring."""
    from picsift.compare import evaluate_run
    from picsift.store import Workspace

    layout = [("train", "cat", 8), ("train", "dog", 8), ("val", "cat", 2), ("val", "dog", 2), ("val", "owl", 3),
              ("test", "cat", 2), ("test", "dog", 3), ("test", "owl", 1)]  # fmt: skip
    ws = tmp_path / "ws"
    runner = CliRunner()
    assert (
        runner.invoke(build_app(), ["import", str(make_split_folders(tmp_path, layout)), "-w", str(ws)]).exit_code == 0
    )
    r = runner.invoke(build_app(), ["train", "-w", str(ws), "--epochs", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "owl (1 test, 3 val)" in r.stderr
    [run_dir] = (ws / "runs").iterdir()
    data = json.loads((run_dir / "data.json").read_text())
    assert (len(data["val_ids"]), len(data["test_ids"])) == (7, 6)  # owl's too, for evaluation
    assert json.loads((run_dir / "run.json").read_text())["n_val"] == 4  # validation during training: cat, dog

    reason = "class not in the model (no training images)"
    for split, why, scored, owl in [("val", "asked for", 4, 3), ("test", "asked for", 5, 1),
                                    ("auto", "the run has a test split", 5, 1)]:  # fmt: skip
        r = runner.invoke(build_app(), ["evaluate", "-w", str(ws), "--device", "cpu", "--split", split])
        assert r.exit_code == 0, r.output
        shown = "test" if split == "auto" else split
        assert f"split: {shown} ({why}), {scored} images scored, {owl} not scored" in r.stdout
        assert f"not scored: owl: {owl} ({reason})" in r.stdout
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["skipped"] == {"owl": {"count": owl, "reason": reason, "reasons": {reason: owl}}}
        assert metrics["n"] == scored and set(metrics["per_class"]) == {"cat", "dog"}

    workspace = Workspace.open(ws)
    compared = evaluate_run(workspace, run_dir)
    workspace.close()
    assert (compared["split"], compared["n_eval"]) == ("test", 5)
    assert compared["skipped"] == {"owl": {"count": 1, "reason": reason, "reasons": {reason: 1}}}
