"""The validation accuracy a run reports is the accuracy of the model it saved, not the best epoch of its history:
run.json (`val_acc`, `best_val_acc`, `kept_epoch`), `picsift train`'s line, `picsift runs`, report.html and tune's
trial scores, for the fast CNN (keeps its last weights), the standard recipe (restores its best epoch), the classical
models and the transfer recipe (keeps the linear probe unless an epoch beats it by two validation images).

Validation while training may run in bf16 and `evaluate` in fp32: the two may differ by an image on a tiny split.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.models.pretrained import KNOWN
from support.deploy import make_workspace
from support.images import DATASETS, require


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.output


def train_json(ws: Path, *args: str) -> dict:
    code, out = cli("train", "-w", str(ws), "--json", "--device", "cpu", *args)
    assert code == 0, out
    return json.loads(out)


def val_score(ws: Path, run_id: str) -> tuple[float, int]:
    """`picsift evaluate --split val` on the run: (accuracy, images scored)."""
    code, out = cli("evaluate", "-w", str(ws), "--run", run_id, "--split", "val", "--json", "--device", "cpu")
    assert code == 0, out
    doc = json.loads(out)
    metrics = doc.get("metrics", doc)
    return float(metrics["accuracy"]), int(metrics["n"])


def record(ws: Path, run_id: str) -> dict:
    return json.loads((ws / "runs" / run_id / "run.json").read_text())


def history(ws: Path, run_id: str) -> list[dict]:
    lines = (ws / "runs" / run_id / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_fast_cnn_reports_its_last_epochs_accuracy_everywhere(tmp_path: Path) -> None:
    """The fast recipe saves its last (averaged) weights: run.json, `runs`, the train line and report.html give the
    last epoch's validation accuracy, which `evaluate --split val` reproduces; the history stays as it was."""
    ws = make_workspace(tmp_path, per_class=20, classes=3)
    out = train_json(ws, "--model", "fastcnn", "--epochs", "4", "--seed", "0")
    rec, rows = record(ws, out["run_id"]), history(ws, out["run_id"])
    assert len(rows) == 4 and all(r["val_acc"] is not None for r in rows)
    assert rec["kept_epoch"] == 4
    assert rec["val_acc"] == rec["best_val_acc"] == out["best_val_acc"] == rows[-1]["val_acc"]
    acc, n = val_score(ws, out["run_id"])
    assert n == rec["n_val"] and abs(acc - rec["val_acc"]) <= 1 / n + 1e-9
    code, listing = cli("runs", "-w", str(ws), "--json")
    assert code == 0, listing
    (listed,) = [r for r in json.loads(listing)["runs"] if r["run_id"] == out["run_id"]]
    assert listed["val_acc"] == rec["val_acc"]
    report = (ws / "runs" / out["run_id"] / "report.html").read_text()
    assert "saved model: epoch 4" in report
    code, text = cli("train", "-w", str(ws), "--model", "fastcnn", "--epochs", "2", "--seed", "1", "--device", "cpu")
    assert code == 0, text
    assert "kept: epoch 2 of 2" in text


def test_classical_model_reports_its_one_fit(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=15, classes=3)
    out = train_json(ws, "--model", "logistic")
    rec, rows = record(ws, out["run_id"]), history(ws, out["run_id"])
    assert rec["kept_epoch"] == 1 and rec["val_acc"] == rec["best_val_acc"] == rows[0]["val_acc"]
    acc, n = val_score(ws, out["run_id"])
    assert acc == pytest.approx(rec["val_acc"])


def test_standard_recipe_reports_its_restored_best_epoch_across_a_resume(tmp_path: Path) -> None:
    """The standard recipe restores its best epoch's weights; a resumed run's best may be from before the resume
    (not in this session's history), and it is still the one reported."""
    from picsift.config import TrainConfig
    from picsift.train import run as train_run

    ws = make_workspace(tmp_path, per_class=12, classes=3)
    base = {"workspace": ws, "model": "mobilenet_v3_small", "image_size": 32, "device": "cpu", "seed": 0}
    first = train_run(TrainConfig(**base, epochs=2))
    rows = history(ws, first.run_id)
    best = max(range(len(rows)), key=lambda i: (rows[i]["val_acc"], -i))
    assert first.kept_epoch == rows[best]["epoch"] and first.val_acc == rows[best]["val_acc"]
    resumed = train_run(TrainConfig(**base, epochs=3, resume=first.run_id))
    # The new run's history after the resume point, the first run's before it (a new folder may hold only its own).
    later = [r for r in history(ws, resumed.run_id) if r["epoch"] > 2]
    rows = [r for r in rows if r["epoch"] <= 2] + later
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    accs = [r["val_acc"] for r in rows]
    kept = next(i for i, a in enumerate(accs) if a == max(accs))  # the first epoch reaching the best wins
    assert resumed.kept_epoch == rows[kept]["epoch"] and resumed.val_acc == accs[kept]
    assert record(ws, resumed.run_id)["val_acc"] == resumed.val_acc


def test_listing_corrects_old_transfer_records_that_kept_the_probe(tmp_path: Path) -> None:
    """Runs recorded before `val_acc` gave a transfer run that kept its probe the best fine-tuned epoch's accuracy
    as `best_val_acc`: `runs` shows the probe's own."""
    from picsift.train.listing import summarize_run

    run = tmp_path / "20250101-000000-efficientnet_lite0"
    run.mkdir()
    probe = {"val_acc": 0.6875}
    trainer = {"recipe": "transfer", "kept": "probe", "phases": {"probe": probe, "finetune": {"ran": True}}}
    (run / "run.json").write_text(
        json.dumps({"model": "efficientnet_lite0", "best_val_acc": 0.71875, "trainer": trainer})
    )
    assert summarize_run(run).val_acc == 0.6875
    (run / "run.json").write_text(json.dumps({"best_val_acc": 0.71875, "val_acc": 0.6875, "kept_epoch": 0}))
    assert summarize_run(run).val_acc == 0.6875


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 training and 16 validation hymenoptera photos per class (ants, bees), split by folder."""
    lite0 = KNOWN["efficientnet_lite0"]
    require(importlib.util.find_spec(lite0.module) is not None, f"{lite0.package} is not installed")
    require((DATASETS / "hymenoptera").is_dir(), f"hymenoptera not found at {DATASETS}")
    from picsift.api import import_images

    root = tmp_path_factory.mktemp("photos")
    for split, n in (("train", 16), ("val", 16)):
        for c in ("ants", "bees"):
            (root / "src" / split / c).mkdir(parents=True)
            for f in sorted((DATASETS / "hymenoptera" / split / c).glob("*.jpg"))[:n]:
                shutil.copyfile(f, root / "src" / split / c / f.name)
    import_images(root / "src", workspace=root / "ws")
    return root / "ws"


def test_transfer_run_reports_the_kept_models_accuracy(photos: Path) -> None:
    """`picsift train --model efficientnet_lite0 --epochs 1 --seed 0`: when the probe is kept, the run reports the
    probe's validation accuracy (not the thrown-away fine-tuned epoch's), and `evaluate --split val` agrees."""
    out = train_json(photos, "--model", "efficientnet_lite0", "--epochs", "1", "--seed", "0")
    rec, rows = record(photos, out["run_id"]), history(photos, out["run_id"])
    probe_acc = rec["trainer"]["phases"]["probe"]["val_acc"]
    assert rows[0]["phase"] == "probe" and rows[0]["val_acc"] == probe_acc
    kept = rec["trainer"]["kept"]
    if kept == "probe":
        assert rec["kept_epoch"] == 0 and rec["val_acc"] == probe_acc
    else:
        assert kept == f"finetune epoch {rec['kept_epoch']}"
        assert rec["val_acc"] == next(r["val_acc"] for r in rows if r["epoch"] == rec["kept_epoch"])
    assert rec["best_val_acc"] == rec["val_acc"] == out["best_val_acc"]
    acc, n = val_score(photos, out["run_id"])
    assert n == rec["n_val"] == 32 and abs(acc - rec["val_acc"]) <= 1 / n + 1e-9
