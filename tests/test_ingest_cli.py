"""`picsift import` and `picsift status` through the real command line (typer's CliRunner)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.store import Workspace
from support.images import write_digits

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(build_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_then_status_json_and_table(tmp_path: Path) -> None:
    data = write_digits(tmp_path / "digits", per_class=10, classes=3)
    (data / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (data / "1" / "copy.png").write_bytes(next((data / "1").glob("*.png")).read_bytes())
    ws = str(tmp_path / "ws")

    code, out, _ = _invoke("import", str(data), "--workspace", ws, "--seed", "1", "--json")
    assert code == 0
    result = json.loads(out)  # stdout is exactly one JSON object
    assert result["kind"] == "folder"
    assert (result["added"], result["duplicates"], result["unreadable"]) == (30, 1, 1)
    assert result["unreadable_files"][0]["path"].endswith("broken.png")
    assert result["classes"] == ["0", "1", "2"]

    code, out, _ = _invoke("status", "--workspace", ws, "--json")
    assert code == 0
    status = json.loads(out)
    assert status["missing"] == []
    for key in (
        "workspace", "images", "readable", "unreadable", "missing", "labeled", "unlabeled", "exact_duplicates",
        "excluded", "exclusions", "classes", "splits", "split_origins", "sources", "imports", "catalog_hash",
    ):  # fmt: skip
        assert key in status, key
    assert status["images"] == 32 and status["readable"] == 31 and status["exact_duplicates"] == 1
    assert status["unreadable"][0]["reason"].startswith(("truncated", "corrupt", "not an image"))
    assert sum(sum(v.values()) for v in status["splits"].values()) == 31
    assert set(status["splits"]) <= {"train", "val", "test"}
    assert status["imports"][0]["counts"]["added"] == 30

    w = Workspace.open(ws)
    w.catalog.exclude({w.catalog.images()[0].id: "blurry"}, kind="curate")
    w.close()
    code, out, _ = _invoke("status", "--workspace", ws, "--json")
    assert json.loads(out)["exclusions"] == {"blurry": 1} and json.loads(out)["excluded"] == 1

    gone = data / "2" / sorted(os.listdir(data / "2"))[0]
    gone.unlink()
    code, out, _ = _invoke("status", "--workspace", ws)
    assert code == 0
    assert "missing files" in out and "no longer on disk" in out
    assert "excluded from training: blurry 1" in out
    assert "32 images" in out and "train" in out and "unreadable files" in out and "corrupt image" in out

    code, out, _ = _invoke("import", str(data), "--workspace", ws)
    assert code == 0
    assert "added 0" in out and "already present 31" in out


def test_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    code, out, err = _invoke("import", str(tmp_path / "missing"), "--workspace", ws)
    assert code == 2 and out == "" and "no such file or folder" in err
    assert not Path(ws).exists()  # a mistyped source leaves no new, empty workspace behind

    (tmp_path / "m.csv").write_text("path,label\nnope.png,cat\n")
    code, _, err = _invoke("import", str(tmp_path / "m.csv"), "--workspace", ws, "--json")
    assert code == 2 and "m.csv line 2: file not found: nope.png" in err

    (tmp_path / "cols.csv").write_text("path;label\nnope.png;cat\nnope.png\n")
    code, out, err = _invoke("import", str(tmp_path / "cols.csv"), "--workspace", ws)
    assert code == 2 and out == ""
    assert "cols.csv line 3: expected 2 columns (path, label) separated by ';', found 1" in " ".join(err.split())

    code, _, err = _invoke("status", "--workspace", str(tmp_path / "never-made"))
    assert code == 2 and "no picsift workspace" in err

    code, _, err = _invoke("import", str(tmp_path / "m.csv"), "--workspace", ws, "--split", "later")
    assert code == 2 and "--split must be one of" in err


def test_square_brackets_in_names_and_messages_are_printed_as_written(tmp_path: Path) -> None:
    # The terminal output goes through rich, whose markup is [tag]...[/]: text from the user's data (class folder
    # names, paths) and picsift's own messages ("a list of [until, size] pairs") must not be taken for markup.
    data = write_digits(tmp_path / "digits", per_class=6, classes=2)
    (data / "0").rename(data / "[misc]")
    ws = str(tmp_path / "ws [copy]")
    code, out, _ = _invoke("import", str(data), "--workspace", ws)
    assert code == 0 and "[copy]" in out
    code, out, _ = _invoke("status", "--workspace", ws)
    assert code == 0 and "│ [misc]" in out and "[copy]" in out
    code, _, err = _invoke("train", "--workspace", ws, "--epochs", "1", "--param", "resize=[[0.5]]")
    assert code == 2 and "expected a list of [until, size] pairs" in err
    code, out, _ = _invoke("train", "--workspace", ws, "--epochs", "1", "--seed", "0")
    assert code == 0 and "[copy]" in out
    code, out, _ = _invoke("evaluate", "--workspace", ws)
    assert code == 0 and "│ [misc]" in out  # the per-class table
    image = next((data / "[misc]").glob("*.png"))
    code, predicted, _ = _invoke("predict", str(image), "--workspace", ws, "--top-k", "2")
    assert code == 0 and "[misc]" in predicted and str(image.name) in predicted  # "path: label (label p, label p)"
    code, listed, _ = _invoke("status", "--workspace", ws)
    for shown in (out, predicted, listed):  # styled lines neither leak their tags nor the escapes of their values
        assert "[bold]" not in shown and "[/]" not in shown and "\\[" not in shown


def test_python_api_wrappers(tmp_path: Path) -> None:
    import picsift
    from picsift import api

    data = write_digits(tmp_path / "digits", per_class=4, classes=2)
    result = api.import_images(data, workspace=tmp_path / "ws", label="digit")
    assert result.added == 8 and result.classes == ["digit"]
    assert api.status(workspace=tmp_path / "ws").labeled == 8
    assert picsift.import_images is api.import_images and picsift.status is api.status
