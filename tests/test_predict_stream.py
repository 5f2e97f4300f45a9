"""`picsift predict --out`: streaming batch prediction into shard files, equal to the in-memory `predict`,
atomic per shard, resumable after a SIGKILL, the same with worker processes, and refusing other inputs."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift import api
from picsift.cli import build_app
from picsift.deploy.export import export
from picsift.errors import ConfigError, DatasetError
from support.batch import all_rows, manifest, shard_rows, symlinked_images
from support.deploy import make_workspace, train_run
from support.images import REPO


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    ws = make_workspace(root, per_class=12)
    return export(train_run(ws, "fastcnn"), root / "bundle")


@pytest.fixture
def photos(bundle: Path, tmp_path: Path) -> Path:
    """The digits of the bundle's workspace, a truncated PNG, an empty file and a text file beside them."""
    folder = tmp_path / "photos"
    images = sorted((bundle.parent / "images").glob("*/*.png"))
    for i, f in enumerate(images):
        (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / f.parent.name / f"{i:03d}.png").write_bytes(f.read_bytes())
    (folder / "1" / "cut.png").write_bytes(images[0].read_bytes()[:60])
    (folder / "2" / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not a picture")
    return folder


def _no_temporary_files(out: Path) -> None:
    assert [f.name for f in out.iterdir() if f.name.startswith(".")] == []


def test_shards_equal_the_in_memory_predictions(bundle: Path, photos: Path, tmp_path: Path) -> None:
    listed = tmp_path / "more.txt"
    missing, folder = str(tmp_path / "gone.png"), str(photos / "1")
    listed.write_text(f"{missing}\n\n{folder}\r\n")  # CRLF and a blank line
    out = tmp_path / "out"
    result = api.predict_to_folder(
        [str(photos)], files_from=[listed], out=out, bundle=bundle, workers=0, shard_size=7, batch_size=3, top_k=2
    )
    expected = api.predict([str(photos), missing], bundle=bundle, top_k=2).predictions
    rows = all_rows(out)
    # A folder on a line of a list file is a file named explicitly: not walked, reported.
    assert rows[-1] == {"path": folder, "label": None, "confidence": None, "error": "not a file"} | {
        "label_2": None, "confidence_2": None
    }  # fmt: skip
    assert [r["path"] for r in rows[:-1]] == [p.path for p in expected]
    n = len(rows)
    assert (result.inputs, result.rows, result.shards, result.written_now, result.resumed) == (
        n, n, math.ceil(n / 7), math.ceil(n / 7), 0
    )  # fmt: skip
    assert list(rows[0]) == ["path", "label", "confidence", "error", "label_2", "confidence_2"]
    for row, p in zip(rows[:-1], expected, strict=True):
        if p.error:
            assert row["error"] == p.error and row["label"] is None and row["confidence"] is None
            continue
        assert row["error"] is None
        assert [row["label"], row["label_2"]] == [c for c, _ in p.top]
        assert row["confidence"] == pytest.approx(p.top[0][1], abs=1e-5)
        assert row["confidence_2"] == pytest.approx(p.top[1][1], abs=1e-5)
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert errors["gone.png"] == "no such file"
    assert errors["1"] == "not a file"
    assert errors["empty.png"] == "empty file (0 bytes)"
    assert errors["cut.png"].startswith("truncated image") or errors["cut.png"].startswith("corrupt image")
    assert result.errors == len(errors) == 4
    assert result.skipped == {"not an image file": 1}

    doc = manifest(out)
    assert doc["complete"] is True
    assert [s["index"] for s in doc["shards"]] == list(range(result.shards))
    for s in doc["shards"]:
        covered = [r["path"] for r in shard_rows(out / s["file"])]
        assert (s["rows"], s["first"], s["last"]) == (len(covered), covered[0], covered[-1])
        assert s["file"] == f"part-{s['index']:05d}.csv"
    assert sorted(f.name for f in out.iterdir()) == sorted(["manifest.json", *(s["file"] for s in doc["shards"])])
    _no_temporary_files(out)


def test_two_workers_write_what_one_process_writes_and_parquet_reads_back(
    bundle: Path, photos: Path, tmp_path: Path
) -> None:
    kw = {"bundle": bundle, "shard_size": 10, "batch_size": 4}
    api.predict_to_folder([str(photos)], out=tmp_path / "w0", workers=0, **kw)
    api.predict_to_folder([str(photos)], out=tmp_path / "w2", workers=2, format="parquet", **kw)
    one, two = all_rows(tmp_path / "w0"), all_rows(tmp_path / "w2")
    assert [r["path"] for r in two] == [r["path"] for r in one]
    assert [(r["label"], r["error"]) for r in two] == [(r["label"], r["error"]) for r in one]
    for a, b in zip(one, two, strict=True):
        assert (a["confidence"] is None and b["confidence"] is None) or abs(a["confidence"] - b["confidence"]) < 1e-6
    assert all(s["file"].endswith(".parquet") for s in manifest(tmp_path / "w2")["shards"])

    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "w2" / "part-00000.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("path", "string"), ("label", "string"), ("confidence", "double"), ("error", "string")
    ]  # fmt: skip


def test_a_second_run_resumes_and_other_inputs_or_settings_are_refused(
    bundle: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = api.predict_to_folder([str(photos)], out=out, bundle=bundle, workers=0, shard_size=8)
    before = {f.name: f.stat().st_mtime_ns for f in out.glob("part-*")}
    # A shard deleted by hand is written again; the others are left as they are.
    (out / "part-00001.csv").unlink()
    again = api.predict_to_folder([str(photos)], out=out, bundle=bundle, workers=0, shard_size=8)
    assert (again.resumed, again.written_now, again.predicted_now, again.rows) == (first.shards - 1, 1, 8, first.rows)
    after = {f.name: f.stat().st_mtime_ns for f in out.glob("part-*")}
    assert {k for k in after if after[k] != before.get(k)} == {"part-00001.csv"}

    (photos / "0" / "new.png").write_bytes((photos / "0" / "000.png").read_bytes())
    with pytest.raises(ConfigError, match=f"{out} holds predictions of other inputs .{first.inputs} paths then, "):
        api.predict_to_folder([str(photos)], out=out, bundle=bundle, workers=0, shard_size=8)
    (photos / "0" / "new.png").unlink()
    with pytest.raises(ConfigError, match="other settings .top_k was 1, now 2.*--overwrite"):
        api.predict_to_folder([str(photos)], out=out, bundle=bundle, workers=0, shard_size=8, top_k=2)
    other = tmp_path / "other-bundle"
    other.mkdir()
    for f in bundle.rglob("*"):
        if f.is_file():
            (other / f.relative_to(bundle)).parent.mkdir(parents=True, exist_ok=True)
            (other / f.relative_to(bundle)).write_bytes(f.read_bytes())
    (other / "bundle.json").write_text((bundle / "bundle.json").read_text().replace("{", '{"note": "x", ', 1))
    with pytest.raises(ConfigError, match="other settings .model.fingerprint was"):
        api.predict_to_folder([str(photos)], out=out, bundle=other, workers=0, shard_size=8)
    replaced = api.predict_to_folder(
        [str(photos)], out=out, bundle=bundle, workers=0, shard_size=5, format="parquet", overwrite=True
    )
    assert sorted(f.name for f in out.iterdir()) == sorted(
        ["manifest.json", *(f"part-{i:05d}.parquet" for i in range(replaced.shards))]
    )


def test_bad_requests_fail_before_anything_is_written(bundle: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="pattern .*nothing-\\*.png' matched no files"):
        api.predict_to_folder([str(photos / "nothing-*.png")], out=out, bundle=bundle)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="folder .*empty' holds no image files"):
        api.predict_to_folder([str(tmp_path / "empty")], out=out, bundle=bundle)
    listed = tmp_path / "paths.txt"
    listed.write_bytes(b"a.png\nb\xff.png\n")
    with pytest.raises(DatasetError, match=f"{listed}, line 2: not UTF-8 text"):
        api.predict_to_folder([], files_from=[listed], out=out, bundle=bundle)
    with pytest.raises(ConfigError, match="--format must be one of csv, parquet, got 'json'"):
        api.predict_to_folder([str(photos)], out=out, bundle=bundle, format="json")
    assert not out.exists()
    out.mkdir()
    (out / "part-00000.csv").write_text("path\n")
    with pytest.raises(ConfigError, match="holds shard files .part-00000.csv, .... but no manifest.json"):
        api.predict_to_folder([str(photos)], out=out, bundle=bundle)


def test_cli_prints_one_summary_line_and_refuses_csv_with_out(bundle: Path, photos: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["predict", str(photos), "--bundle", str(bundle), "--out", str(out), "--workers", "0"]
    r = runner.invoke(build_app(), args)
    assert r.exit_code == 0, r.output
    n = len(all_rows(out))
    lines = r.stdout.splitlines()
    assert lines[0] == "skipped 1 files (not images): not an image file 1"
    assert lines[-1].startswith(f"predicted {n} images in ")
    assert lines[-1].endswith(f"{n} rows in 1 csv shards, 2 unreadable; manifest: {out / 'manifest.json'}")
    r = runner.invoke(build_app(), args)
    assert "predicted 0 images in " in r.stdout and "1 already written" in r.stdout
    r = runner.invoke(build_app(), [*args, "--csv", str(tmp_path / "p.csv")])
    assert r.exit_code == 2 and "--csv and --out: choose one" in r.output


@pytest.mark.slow
def test_sigkill_mid_run_then_the_same_command_writes_each_input_once(bundle: Path, tmp_path: Path) -> None:
    images = sorted((bundle.parent / "images").glob("*/*.png"))
    paths = symlinked_images(images, tmp_path / "many", 3000)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "picsift", "predict", str(tmp_path / "many"), "--bundle", str(bundle),
           "--out", str(out), "--workers", "2", "--shard-size", "50", "--batch-size", "10"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if (out / "part-00002.csv").exists():
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    proc.stderr.close()  # type: ignore[union-attr]
    written = manifest(out)["shards"]
    assert written and not manifest(out)["complete"]
    # Every shard file there is whole (60 shards of 50 rows); a shard being written was a temporary file.
    for f in out.glob("part-*.csv"):
        assert len(shard_rows(f)) == 50

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f", {len(written)} already written" in done.stdout
    rows = all_rows(out)
    assert len(rows) == 3000 and sorted(r["path"] for r in rows) == sorted(paths)
    assert all(r["error"] is None for r in rows)
    assert manifest(out)["complete"] is True
    _no_temporary_files(out)
