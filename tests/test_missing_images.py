"""Image files that vanish or get corrupted after import: every stage that reads them skips them with one line
naming them (or stops with that line under --strict, exit 2), never a traceback, and a failed run leaves no
run folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.data.available import MISSING, SkippedImage, skipped_message, split_present
from picsift.runs import new_run
from picsift.store import ImageRow, Workspace
from support.images import write_digits
from support.label import app_client

torch.set_num_threads(1)


@dataclass
class Setup:
    ws: Path
    run: Path  # trained before any file went missing
    gone: ImageRow  # a val image deleted after import
    broken: ImageRow  # a test image overwritten with bytes that do not decode


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def runs(ws: Path) -> list[str]:
    return sorted(p.name for p in (ws / "runs").iterdir())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("missing")
    images = write_digits(root / "images", per_class=10, classes=2)
    ws = root / "ws"
    code, _, err = cli("import", str(images), "-w", str(ws))
    assert code == 0, err
    code, _, err = cli("train", "-w", str(ws), "--epochs", "1", "--device", "cpu")
    assert code == 0, err
    [run] = (ws / "runs").iterdir()
    w = Workspace.open(ws)
    val = w.catalog.images(split="val")
    test = w.catalog.images(split="test")
    w.close()
    assert len(val) == 2 and len(test) == 2  # the seeded 10% / 10% split of 20 images
    Path(val[0].path).unlink()
    Path(test[0].path).write_bytes(b"\x89PNG\r\n\x1a\n but not an image any more")
    return Setup(ws, run, val[0], test[0])


def test_helper_splits_rows_and_builds_one_line(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Row:
        id: int
        path: str
        sha256: str = ""

    there = tmp_path / "there.png"
    there.write_bytes(b"x")
    rows = [Row(1, str(there))] + [Row(i, str(tmp_path / f"{c}.png")) for i, c in enumerate("abcde", 2)]
    present, skipped = split_present(rows)
    assert [r.id for r in present] == [1] and [s.image_id for s in skipped] == [2, 3, 4, 5, 6]
    assert all(s.kind == MISSING and s.reason == "missing on disk" for s in skipped)
    paths = [str(tmp_path / f"{c}.png") for c in "abcde"]
    assert skipped_message(skipped) == (
        f"5 images are missing on disk and were skipped: {paths[0]}, {paths[1]}, {paths[2]}, ... and 2 more "
        "(run `picsift status`)"
    )
    assert (
        skipped_message(skipped[:1]) == f"1 image is missing on disk and was skipped: {paths[0]} (run `picsift status`)"
    )
    assert skipped_message(skipped[:1], strict=True) == (
        f"1 image is missing on disk: {paths[0]} (run `picsift status`; without --strict they are skipped)"
    )
    bad = SkippedImage(9, "/x/bad.png", "no longer decodes", "truncated image: broken data stream")
    assert skipped_message([bad]) == (
        "1 image no longer decodes and was skipped: /x/bad.png (truncated image: broken data stream) "
        "(run `picsift status`)"
    )
    assert skipped_message([]) == ""


def test_a_failed_run_leaves_no_folder(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    with pytest.raises(RuntimeError), new_run(ws, "fastcnn") as run:
        (run.path / "config.json").write_text("{}")
        raise RuntimeError("a crash mid-run")
    assert not list(ws.runs_dir.iterdir())
    with pytest.raises(KeyboardInterrupt), new_run(ws, "fastcnn") as run:
        run.checkpoint_path.write_bytes(b"weights")  # resumable: kept for --resume
        raise KeyboardInterrupt
    assert [p.name for p in ws.runs_dir.iterdir()] == [run.name]
    ws.close()


def test_train_skips_the_missing_file_and_strict_stops(setup: Setup) -> None:
    before = runs(setup.ws)
    code, out, err = cli("train", "-w", str(setup.ws), "--epochs", "1", "--device", "cpu")
    assert code == 0, err
    assert "Traceback" not in err
    # The deleted file was class 0's only validation image, so training says validation no longer covers it.
    assert err.splitlines()[1:] == [
        f"warning: 1 class has training images but no validation images: {setup.gone.label}; validation "
        "accuracy does not cover them"
    ]
    assert f"1 image is missing on disk and was skipped: {setup.gone.path} (run `picsift status`)" in err
    [new] = sorted(set(runs(setup.ws)) - set(before))
    run_json = json.loads((setup.ws / "runs" / new / "run.json").read_text())
    data = json.loads((setup.ws / "runs" / new / "data.json").read_text())
    assert run_json["n_train"] + run_json["n_val"] + run_json["n_test"] == 19
    assert (run_json["n_train"], run_json["n_val"], run_json["n_skipped"]) == (16, 1, 1)
    assert setup.gone.id not in data["train_ids"] + data["val_ids"]
    assert [s["path"] for s in data["skipped_images"]] == [setup.gone.path]

    before = runs(setup.ws)
    code, out, err = cli("train", "-w", str(setup.ws), "--epochs", "1", "--device", "cpu", "--strict")
    assert code == 2 and "Traceback" not in err
    assert f"error: 1 image is missing on disk: {setup.gone.path}" in err
    assert runs(setup.ws) == before  # no half-made run folder


def test_evaluate_skips_missing_and_undecodable_images(setup: Setup) -> None:
    ws, run = str(setup.ws), setup.run.name
    code, out, err = cli("evaluate", "-w", ws, "--run", run, "--split", "val", "--device", "cpu")
    assert code == 0, err
    assert f"1 image is missing on disk and was skipped: {setup.gone.path}" in err
    metrics = json.loads((setup.run / "metrics.json").read_text())
    assert metrics["n"] == 1 and metrics["split"] == "val"
    assert metrics["skipped"] == {
        setup.gone.label: {"count": 1, "reason": "missing on disk", "reasons": {"missing on disk": 1}}
    }
    assert f"not scored: {setup.gone.label}: 1 (missing on disk)" in out

    code, out, err = cli("evaluate", "-w", ws, "--run", run, "--device", "cpu")  # the test split
    assert code == 0, err
    assert f"1 image no longer decodes and was skipped: {setup.broken.path} (" in err
    metrics = json.loads((setup.run / "metrics.json").read_text())
    assert metrics["n"] == 1 and metrics["split"] == "test"
    assert [s["image_id"] for s in metrics["skipped_images"]] == [setup.broken.id]

    code, out, err = cli("evaluate", "-w", ws, "--run", run, "--split", "val", "--device", "cpu", "--strict")
    assert code == 2 and f"1 image is missing on disk: {setup.gone.path}" in err and "Traceback" not in err


def test_clean_features_cluster_and_export_clean_skip_with_one_line(setup: Setup) -> None:
    ws = str(setup.ws)
    code, out, err = cli("clean", "-w", ws, "--checks", "quality,duplicates", "--json")
    assert code == 0, err
    assert f"1 image is missing on disk and was skipped: {setup.gone.path}" in err
    assert f"1 image no longer decodes and was skipped: {setup.broken.path}" in err
    result = json.loads(out)
    assert {s["image_id"] for s in result["skipped_images"]} == {setup.gone.id, setup.broken.id}
    findings = json.loads((setup.ws / "findings.json").read_text())
    unreadable = [f for f in findings["findings"] if f["kind"] == "unreadable"]
    assert [f["image_ids"] for f in unreadable] == [[setup.broken.id]]  # the corrupt file is a finding too
    code, _, err = cli("clean", "-w", ws, "--checks", "quality", "--strict")
    assert code == 2 and "error: 1 image is missing on disk" in err

    code, out, err = cli("features", "-w", ws, "--extractor", "lbp", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["images"] == 18 and result["dim"] > 0
    assert {s["image_id"] for s in result["skipped_images"]} == {setup.gone.id, setup.broken.id}
    assert err.count("warning:") == 1 and setup.gone.path in err and setup.broken.path in err
    code, _, err = cli("features", "-w", ws, "--extractor", "lbp", "--strict")
    assert code == 2 and "error: 1 image is missing on disk" in err

    code, out, err = cli("cluster", "-w", ws, "--k", "2", "--features", "lbp", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_images"] == 18 and sum(c["size"] for c in result["clusters"]) == 18
    assert {s["image_id"] for s in result["skipped_images"]} == {setup.gone.id, setup.broken.id}

    code, out, err = cli("export-clean", str(setup.ws.parent / "clean-copy"), "-w", ws, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["images"] == 19 and [s["image_id"] for s in result["skipped_images"]] == [setup.gone.id]
    assert f"1 image is missing on disk and was skipped: {setup.gone.path}" in err


def test_export_parity_samples_skip_missing_files(setup: Setup, tmp_path: Path) -> None:
    args = ["export", "-w", str(setup.ws), "--run", setup.run.name, "--out", str(tmp_path / "b")]
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    parity = json.loads(out)["parity"]
    assert parity["passed"] and {s["image_id"] for s in parity["skipped_images"]} == {setup.gone.id, setup.broken.id}
    assert parity["n_labelled"] == 2  # the 4 test/val images less the 2 skipped
    assert f"1 image is missing on disk and was skipped: {setup.gone.path}" in err
    code, _, err = cli(*args[:-1], str(tmp_path / "strict"), "--strict")
    assert code == 2 and "error:" in err and not (tmp_path / "strict").exists()


def test_autolabel_and_label_app_thumbnails(setup: Setup) -> None:
    w = Workspace.open(setup.ws)
    other = next(r for r in w.catalog.images(split="train"))
    for row in (setup.gone, other):  # two unlabelled images, one of them gone from disk
        w.catalog.set_label(row.id, None)
    try:
        code, out, err = cli("autolabel", "-w", str(setup.ws), "--run", setup.run.name, "--threshold", "0", "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["considered"] == 2 and result["proposed"] == 1
        assert [s["image_id"] for s in result["skipped_images"]] == [setup.gone.id]
        assert f"1 image is missing on disk and was skipped: {setup.gone.path}" in err
        code, _, err = cli("autolabel", "-w", str(setup.ws), "--run", setup.run.name, "--strict")
        assert code == 2 and "error: 1 image is missing on disk" in err

        with app_client(w) as c:
            r = c.get(f"/api/images/{setup.gone.id}/thumb")
            assert r.status_code == 404 and r.headers["content-type"] == "application/json"
            assert r.json()["detail"] == (
                f"image {setup.gone.id} ({setup.gone.path}): missing on disk (moved or changed since import; "
                "run `picsift status`)"
            )
            r = c.get(f"/api/images/{setup.broken.id}/full")
            assert r.status_code == 404 and "no longer decodes" in r.json()["detail"]
            assert c.get(f"/api/images/{other.id}/thumb").status_code == 200
            page = c.get("/api/images", params={"view": "unlabeled"})  # predictions skip the missing file
            assert page.status_code == 200 and page.json()["total"] == 2
    finally:
        w.catalog.set_label(setup.gone.id, setup.gone.label)
        w.catalog.set_label(other.id, other.label)
        w.close()
