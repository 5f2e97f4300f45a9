"""A failed `picsift import` says why, exits 2 and leaves no trace: malformed quoting in delimited inputs
(manifests, URL lists, label files) names the file and line, and a source that yields nothing to import creates
no workspace and changes an existing one in nothing."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import ImportConfig
from picsift.errors import DatasetError
from picsift.ingest import run
from picsift.ingest.sources import discover_url_list
from picsift.label.label_files import read_label_file
from picsift.store import Workspace

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(build_app(), list(args))
    return result.exit_code, result.stdout, " ".join(result.stderr.split())  # rich wraps long lines


def _jpeg(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, quality=90)
    return path


def _cifar_like(root: Path) -> Path:
    for i, rel in enumerate(["cifar/airplane/0000.jpg", "cifar/airplane/0001.jpg", "cifar/cat/0000.jpg"]):
        _jpeg(root / rel, i)
    return root


def _tree(folder: Path) -> dict[str, int]:
    """Every file under `folder` with its size, SQLite's transient -wal/-shm files left out."""
    return {
        os.path.relpath(os.path.join(d, f), folder): os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(folder)
        for f in files
        if not f.endswith(("-wal", "-shm"))
    }


def _state(ws: Path) -> tuple[dict[str, int], str, int]:
    w = Workspace.open(ws)
    try:
        return _tree(ws), w.catalog.catalog_hash(), w.catalog.count()
    finally:
        w.close()


BAD_CSV = 'path,label\ncifar/airplane/0000.jpg,airplane\ncifar/airplane/0001.jpg,"air,plane\ncifar/cat/0000.jpg,cat\n'


def test_unclosed_quote_names_file_and_line_exit_2_and_nothing_imported(tmp_path: Path) -> None:
    data = _cifar_like(tmp_path / "data")
    (data / "bad.csv").write_text(BAD_CSV)
    ws = tmp_path / "ws"

    code, out, err = _invoke("import", str(data / "bad.csv"), "--workspace", str(ws))
    assert code == 2 and out == ""
    assert "bad.csv line 3: unclosed quote" in err and "end of the file, line 4" in err
    assert not ws.exists()  # no workspace created

    (data / "good.csv").write_text("path,label\ncifar/airplane/0000.jpg,airplane\n")
    code, _, _ = _invoke("import", str(data / "good.csv"), "--workspace", str(ws))
    assert code == 0
    before = _state(ws)
    code, _, err = _invoke("import", str(data / "bad.csv"), "--workspace", str(ws))
    assert code == 2 and "bad.csv line 3: unclosed quote" in err
    assert _state(ws) == before and before[2] == 1  # the existing workspace is untouched

    (data / "fixed.csv").write_text(BAD_CSV.replace('"air,plane', '"air,plane"'))
    result = run(ImportConfig(source=str(data / "fixed.csv"), workspace=tmp_path / "ws2"))
    assert result.added == 3 and result.classes == ["air,plane", "airplane", "cat"]  # a closed quote is fine


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "last.csv",
            'path,label\ncifar/cat/0000.jpg,"cat\n',
            r"last.csv line 2: unclosed quote: .*not closed before the end of the file",
        ),
        (
            "closed_later.csv",  # closed on a later line: still a label with a line break
            'path,label\ncifar/cat/0000.jpg,"cat\ncifar/airplane/0000.jpg,air"\n',
            r"closed_later.csv line 2: unclosed quote: .*runs on to line 3",
        ),
        (
            "tabs.tsv",
            'path\tlabel\tsplit\ncifar/cat/0000.jpg\tcat\ttrain\ncifar/airplane/0000.jpg\t"plane\ttrain\n',
            r"tabs.tsv line 3: unclosed quote",
        ),
        ("after.csv", 'path,label\ncifar/cat/0000.jpg,"cat"s\n', r"after.csv line 2: malformed quoting \(',' expected"),
        (
            "semi.csv",
            'path;label\ncifar/cat/0000.jpg;cat\n"cifar/airplane/0000.jpg;airplane\n',
            r"semi.csv line 3: unclosed quote",
        ),
    ],
)
def test_malformed_quoting_in_a_manifest_is_refused(tmp_path: Path, name: str, content: str, message: str) -> None:
    data = _cifar_like(tmp_path / "data")
    (data / name).write_text(content)
    with pytest.raises(DatasetError, match=message):
        run(ImportConfig(source=str(data / name), workspace=tmp_path / "ws"))
    assert not (tmp_path / "ws").exists()


def test_a_quote_in_a_comment_line_swallows_no_rows(tmp_path: Path) -> None:
    data = _cifar_like(tmp_path / "data")
    (data / "m.csv").write_text(
        '# exported by "tool, v2\npath,label\ncifar/cat/0000.jpg,cat\ncifar/airplane/0000.jpg,ai\n'
    )
    result = run(ImportConfig(source=str(data / "m.csv"), workspace=tmp_path / "ws"))
    assert result.added == 2 and result.classes == ["ai", "cat"]


def test_url_list_quoting(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text('http://example.invalid/a.png,"air, plane",train\nhttp://example.invalid/b.png\tcat\n')
    found = discover_url_list(urls)
    assert [(e.url, e.label, e.split) for e in found.entries] == [
        ("http://example.invalid/a.png", "air, plane", "train"),
        ("http://example.invalid/b.png", "cat", None),
    ]
    urls.write_text('http://example.invalid/a.png,cat\nhttp://example.invalid/b.png,"air,plane\n# end\n')
    with pytest.raises(DatasetError, match=r"urls.txt line 2: unclosed quote"):
        run(ImportConfig(source=str(urls), workspace=tmp_path / "ws"))
    assert not (tmp_path / "ws").exists()


def test_label_files_refuse_a_path_or_label_with_a_line_break(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text('path,label\na.png,dog\nb.png,"cat\nc.png,dog\n')
    with pytest.raises(DatasetError, match=r"labels.csv line 3: unclosed quote: .*end of the file, line 4"):
        read_label_file(bad)
    bad.write_text('path,label\na.png,dog\nb.png,"cat\nc.png,dog"\n')
    with pytest.raises(DatasetError, match=r"labels.csv line 3: the label field runs on to line 4"):
        read_label_file(bad)
    bad.write_text('path,label\n"a\nb.png",dog\n')
    with pytest.raises(DatasetError, match=r"labels.csv line 2: the path field runs on to line 3"):
        read_label_file(bad)
    bad.write_text('path,label\na.png,"dog"s\n')
    with pytest.raises(DatasetError, match=r"labels.csv line 2: malformed quoting"):
        read_label_file(bad)
    # Label Studio's CSV export may hold a multi-line comment in a column of its own: that row is fine.
    ls = tmp_path / "ls.csv"
    ls.write_text('image,choice,annotator,comment\nphotos/a.png,dog,1,"two\nlines"\nphotos/b.png,cat,1,\n')
    assert [(r.path, r.labels) for r in read_label_file(ls).records] == [
        ("photos/a.png", ("dog",)),
        ("photos/b.png", ("cat",)),
    ]
    js = tmp_path / "labels.json"
    js.write_text('[{"path": "a.png", "label": "dog\\ncat"}]')
    with pytest.raises(DatasetError, match=r"cannot hold a line break"):
        read_label_file(js)


def test_a_label_with_a_line_break_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _jpeg(data / "cat\nsmall" / "0.jpg", 0)
    with pytest.raises(DatasetError, match=r"0.jpg: a label cannot hold a line break"):
        run(ImportConfig(source=str(data), workspace=tmp_path / "ws"))
    code, _, err = _invoke("import", str(data), "--workspace", str(tmp_path / "ws"), "--label", "a\nb")
    assert code == 2 and "cannot hold a line break" in err
    assert not (tmp_path / "ws").exists()


def test_empty_folder_creates_no_workspace_and_changes_no_existing_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    ws = tmp_path / "wsE"
    code, out, err = _invoke("import", str(empty), "-w", str(ws))
    assert code == 2 and out == "" and "empty_folder: found nothing to import" in err
    assert not ws.exists()

    nested = tmp_path / "new" / "deeper" / "ws"  # every folder the import would have made is gone again
    assert _invoke("import", str(empty), "-w", str(nested))[0] == 2
    assert not (tmp_path / "new").exists()

    chosen = tmp_path / "my-folder"  # a folder that exists but holds no workspace is left as it was
    chosen.mkdir()
    (chosen / "notes.md").write_text("mine")
    assert _invoke("import", str(empty), "-w", str(chosen))[0] == 2
    assert sorted(os.listdir(chosen)) == ["notes.md"]

    (tmp_path / "header_only.csv").write_text("path,label\n")
    assert _invoke("import", str(tmp_path / "header_only.csv"), "-w", str(ws))[0] == 2
    assert not ws.exists()

    _jpeg(tmp_path / "one" / "a.jpg", 0)
    assert _invoke("import", str(tmp_path / "one"), "-w", str(ws))[0] == 0
    before = _state(ws)
    assert _invoke("import", str(empty), "-w", str(ws))[0] == 2
    assert _state(ws) == before


def test_only_non_image_files_is_nothing_to_import(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(10):
        (notes / f"n{i}.txt").write_text("not a picture")
    (notes / "README").write_text("x")
    (notes / ".DS_Store").write_bytes(b"\0")
    ws = tmp_path / "ws"
    code, out, err = _invoke("import", str(notes), "-w", str(ws))
    assert code == 2 and out == ""
    assert "notes: found nothing to import: no image files" in err
    assert "12 files skipped: 10 not an image file (.txt), 1 hidden or system file, 1 not an image file (no ext" in err
    assert not ws.exists()

    archive = tmp_path / "notes.zip"  # the same in an archive: its extraction is not kept either
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(3):
            z.writestr(f"docs/n{i}.txt", "x")
    code, _, err = _invoke("import", str(archive), "-w", str(ws))
    assert code == 2 and "3 files skipped: 3 not an image file (.txt)" in err
    assert not ws.exists()
    _jpeg(tmp_path / "one" / "a.jpg", 0)
    assert _invoke("import", str(tmp_path / "one"), "-w", str(ws))[0] == 0
    before = _state(ws)
    assert _invoke("import", str(archive), "-w", str(ws))[0] == 2
    assert _state(ws) == before  # no extracted copy left in files/archives


def test_some_images_among_other_files_and_a_reimport_succeed(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    for i in range(3):
        _jpeg(mixed / f"{i}.jpg", i)
        (mixed / f"{i}.txt").write_text("caption")
    ws = tmp_path / "ws"
    code, out, _ = _invoke("import", str(mixed), "-w", str(ws))
    assert code == 0 and "added 3" in out and "skipped 3" in out
    code, out, _ = _invoke("import", str(mixed), "-w", str(ws))  # all already present: a success
    assert code == 0 and "added 0" in out and "already present 3" in out


def test_a_new_workspace_another_import_wrote_meanwhile_is_kept(tmp_path: Path) -> None:
    from picsift.ingest.rollback import ImportRollback

    ws = tmp_path / "ws"
    _jpeg(tmp_path / "one" / "a.jpg", 0)
    with pytest.raises(DatasetError), ImportRollback(ws):  # the failing import began before the workspace existed
        run(ImportConfig(source=str(tmp_path / "one"), workspace=ws))  # another import, meanwhile, succeeded
        raise DatasetError("found nothing to import")
    assert _state(ws)[2] == 1
