"""Import sources and catalog semantics: layouts, manifests, odd names, idempotence, duplicates, splits."""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.config import ImportConfig
from picsift.errors import ConfigError, DatasetError
from picsift.ingest import run
from picsift.store import Workspace


def _png(path: Path, seed: int, size: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(path, "PNG")
    return path


def _rows(ws: Path) -> list:  # type: ignore[type-arg]
    w = Workspace.open(ws)
    try:
        return w.catalog.images(readable=None, include_excluded=True)
    finally:
        w.close()


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = (Path(p).read_bytes(), os.stat(p).st_mtime_ns)
    return out


def test_folder_per_class_labels_and_label_events(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    for i in range(10):
        _png(root / "cat" / f"c{i}.png", i)
        _png(root / "dog" / "nested" / f"d{i}.png", 100 + i)
    _png(root / "loose.png", 999)
    (root / "README.md").write_text("about this data")
    before = _snapshot(root)
    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws", seed=3))
    assert result.kind == "folder"
    assert (result.added, result.duplicates, len(result.unreadable)) == (21, 0, 0)
    assert [(os.path.basename(i.path), i.reason) for i in result.skipped] == [("README.md", "not an image file (.md)")]
    rows = _rows(tmp_path / "ws")
    labels = Counter(r.label for r in rows)
    assert labels == {"cat": 10, "dog": 10, None: 1}
    assert all(os.path.isabs(r.path) and r.source == str(root) for r in rows)
    assert _snapshot(root) == before  # user files untouched
    w = Workspace.open(tmp_path / "ws")
    history = w.catalog.label_history(next(r.id for r in rows if r.label == "cat"))
    assert len(history) == 1 and history[0]["origin"] == "import" and history[0]["status"] == "accepted"
    assert history[0]["annotator"] and history[0]["created_at"]
    assert w.catalog.classes() == ["cat", "dog"]
    w.close()


def test_split_folders_keep_their_splits(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split, n in (("train", 6), ("Validation", 3), ("test", 2)):
        for c in ("a", "b"):
            for i in range(n):
                _png(root / split / c / f"{i}.png", hash((split, c, i)) % 10_000)
    _png(root / "extras" / "x" / "1.png", 5)
    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert result.kind == "split-folders"
    assert result.splits == {"test": 4, "train": 12, "val": 6}
    assert result.split_origins == {"source": 22}
    assert [i.reason for i in result.skipped] == ["folder 'extras' is not a split (train, val or test)"]
    rows = _rows(tmp_path / "ws")
    assert all(r.split in r.path.lower() or (r.split == "val" and "Validation" in r.path) for r in rows)


def test_flat_folder_unlabeled_or_forced_label_and_split(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for i in range(5):
        _png(flat / f"{i}.png", i)
    result = run(ImportConfig(source=str(flat), workspace=tmp_path / "ws"))
    assert result.kind == "flat" and result.added == 5 and result.labeled == 0
    assert all(r.label is None for r in _rows(tmp_path / "ws"))

    result = run(ImportConfig(source=str(flat), workspace=tmp_path / "ws2", label="bird", split="Test"))
    rows = _rows(tmp_path / "ws2")
    assert {(r.label, r.split, r.split_origin) for r in rows} == {("bird", "test", "manual")}

    with pytest.raises(ConfigError, match="--split"):
        run(ImportConfig(source=str(flat), workspace=tmp_path / "ws3", split="holdout"))


def test_single_image_file(tmp_path: Path) -> None:
    img = _png(tmp_path / "one.png", 1)
    result = run(ImportConfig(source=str(img), workspace=tmp_path / "ws", label="x"))
    assert result.kind == "file" and result.added == 1


def test_csv_manifest_relative_paths_labels_and_splits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(4):
        _png(data / "imgs" / f"{i}.png", i)
    (data / "labels.csv").write_text(
        "path,label,split\nimgs/0.png,cat,train\nimgs/1.png,dog,valid\n# a comment\n\nimgs/2.png,,\nimgs/3.png,cat,\n"
    )
    result = run(ImportConfig(source=str(data / "labels.csv"), workspace=tmp_path / "ws"))
    assert result.kind == "csv" and result.added == 4
    rows = {os.path.basename(r.path): r for r in _rows(tmp_path / "ws")}
    assert (rows["0.png"].label, rows["0.png"].split, rows["0.png"].split_origin) == ("cat", "train", "source")
    assert (rows["1.png"].label, rows["1.png"].split) == ("dog", "val")
    assert rows["2.png"].label is None
    assert rows["3.png"].split_origin == "auto"
    assert rows["0.png"].path == str(data / "imgs" / "0.png")

    # Headerless, two columns.
    (data / "plain.csv").write_text("imgs/0.png,cat\nimgs/1.png,dog\n")
    result = run(ImportConfig(source=str(data / "plain.csv"), workspace=tmp_path / "ws2"))
    assert result.added == 2 and result.classes == ["cat", "dog"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,label\nimgs/0.png,cat\nimgs/missing.png,dog\n", r"labels.csv line 3: file not found: imgs/missing.png"),
        ("imgs/0.png,cat,train,extra\n", r"labels.csv line 1: expected at most 3 columns \(path, label, split\) "),
        (
            "path,label\nimgs/0.png,cat\n\nimgs/0.png\n",
            r"labels.csv line 4: expected 2 columns \(path, label\) separated by ','",
        ),
        (
            "imgs/0.png;cat\nimgs/0.png;cat;train\n",
            r"labels.csv line 2: expected 2 columns \(path, label\) separated by ';', found 3",
        ),
        ("path,label,split\nimgs/0.png,cat,holdout\n", r"line 2: unknown split 'holdout'"),
        ("path,label\n,cat\n", r"line 2: empty path"),
        ("path,label\nimgs,cat\n", r"line 2: imgs is a folder"),
        ("C:\\data\\0.png,cat\n", r"line 1: file not found: C:\\data\\0.png .*backslash paths: written on Windows\?"),
        ("path,label\nimgs/0.png,cat\nimgs/0.png,dog\n", r"line 3: imgs/0.png is listed again .*first on line 2"),
    ],
)
def test_csv_errors_name_the_line_and_change_nothing(tmp_path: Path, content: str, message: str) -> None:
    data = tmp_path / "data"
    _png(data / "imgs" / "0.png", 0)
    _png(data / "other" / "1.png", 1)
    ws = tmp_path / "ws"
    run(ImportConfig(source=str(data / "other"), workspace=ws, label="seed"))
    before = Workspace.open(ws).catalog.catalog_hash()
    (data / "labels.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        run(ImportConfig(source=str(data / "labels.csv"), workspace=ws))
    w = Workspace.open(ws)
    assert w.catalog.catalog_hash() == before and w.catalog.count() == 1
    w.close()


def test_manifest_written_on_windows_backslash_paths_bom_and_crlf(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i, cls in enumerate(["a", "a", "b"]):
        _png(data / "imgs" / cls / f"{i}.png", i)
    rows = ["imgs\\a\\0.png,cat", "imgs\\a\\1.png,cat", "imgs\\b\\2.png,dog"]
    (data / "labels.csv").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode())
    result = run(ImportConfig(source=str(data / "labels.csv"), workspace=tmp_path / "ws"))
    assert result.added == 3 and result.classes == ["cat", "dog"]
    labels = {os.path.relpath(r.path, data): r.label for r in _rows(tmp_path / "ws")}
    assert labels == {"imgs/a/0.png": "cat", "imgs/a/1.png": "cat", "imgs/b/2.png": "dog"}


@pytest.mark.parametrize(("delimiter", "suffix"), [(";", ".csv"), ("\t", ".tsv"), ("|", ".csv")])
def test_semicolon_and_tab_separated_manifests_with_headers(tmp_path: Path, delimiter: str, suffix: str) -> None:
    data = tmp_path / "data"
    for i in range(3):
        _png(data / "imgs" / f"{i}.png", i)
    lines = ["Path;Label;Split", "imgs/0.png;cat, tabby;train", "imgs/1.png;dog;val", "imgs/2.png;dog;"]
    text = "\ufeff" + "\r\n".join(line.replace(";", delimiter) for line in lines) + "\r\n"
    (data / f"labels{suffix}").write_bytes(text.encode())
    result = run(ImportConfig(source=str(data / f"labels{suffix}"), workspace=tmp_path / "ws"))
    assert result.kind == "csv" and result.added == 3 and result.classes == ["cat, tabby", "dog"]
    rows = {os.path.basename(r.path): r for r in _rows(tmp_path / "ws")}
    assert (rows["0.png"].label, rows["0.png"].split) == ("cat, tabby", "train")
    assert (rows["1.png"].label, rows["1.png"].split) == ("dog", "val")


def test_csv_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes(b"path,label\na.png,caf\xe9\n")
    with pytest.raises(DatasetError, match=r"m.csv line 2: not UTF-8"):
        run(ImportConfig(source=str(tmp_path / "m.csv"), workspace=tmp_path / "ws"))


def test_missing_or_unsupported_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file or folder"):
        run(ImportConfig(source=str(tmp_path / "nope"), workspace=tmp_path / "ws"))
    (tmp_path / "model.onnx").write_bytes(b"\0")
    with pytest.raises(DatasetError, match="unsupported source"):
        run(ImportConfig(source=str(tmp_path / "model.onnx"), workspace=tmp_path / "ws"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(DatasetError, match="found nothing to import"):
        run(ImportConfig(source=str(tmp_path / "empty"), workspace=tmp_path / "ws"))


def test_hidden_files_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _png(root / "a" / "1.png", 1)
    (root / "a" / ".DS_Store").write_bytes(b"\0\0")
    (root / "a" / "Thumbs.db").write_bytes(b"\0")
    _png(root / ".git" / "x.png", 2)
    _png(root / "a" / ".cache" / "y.png", 3)
    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert result.added == 1
    assert len(result.skipped) == 4
    assert result.to_dict()["skipped_by_reason"] == {"hidden or system file": 4}


def test_odd_and_non_utf8_file_names(tmp_path: Path) -> None:
    root = tmp_path / "odd names"
    _png(root / "ünïcödé class" / "with space.png", 1)
    _png(root / "ünïcödé class" / "日本語.png", 2)
    _png(root / "ünïcödé class" / "quote'and,comma.png", 3)
    raw = os.path.join(os.fsencode(root / "ünïcödé class"), b"caf\xe9-latin1.png")
    with open(raw, "wb") as f:
        buf = io.BytesIO()
        Image.new("RGB", (5, 5), (1, 2, 3)).save(buf, "PNG")
        f.write(buf.getvalue())
    os.makedirs(os.path.join(os.fsencode(root), b"\xff\xfeclass"))
    _png(Path(os.fsdecode(os.path.join(os.fsencode(root), b"\xff\xfeclass", b"x.png"))), 4)
    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert result.added == 5 and not result.unreadable
    rows = _rows(tmp_path / "ws")
    by_name = {os.path.basename(r.path): r for r in rows}
    latin = os.fsdecode(b"caf\xe9-latin1.png")
    assert latin in by_name and Path(by_name[latin].path).read_bytes()[:4] == b"\x89PNG"
    assert {r.label for r in rows} == {"ünïcödé class", "\\xff\\xfeclass"}
    # Idempotent for odd names too.
    again = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert (again.added, again.already_present) == (0, 5)


def test_reimport_adds_nothing_and_duplicates_are_recorded(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _png(root / "a" / "1.png", 1)
    _png(root / "a" / "2.png", 2)
    (root / "b").mkdir()
    (root / "b" / "copy_of_1.png").write_bytes((root / "a" / "1.png").read_bytes())
    ws = tmp_path / "ws"
    first = run(ImportConfig(source=str(root), workspace=ws))
    assert (first.added, first.duplicates) == (2, 1)
    rows = {os.path.basename(r.path): r for r in _rows(ws)}
    assert rows["copy_of_1.png"].duplicate_of == rows["1.png"].id
    assert rows["copy_of_1.png"].sha256 == rows["1.png"].sha256
    assert rows["copy_of_1.png"].split == rows["1.png"].split  # copies never straddle splits
    hash_before = Workspace.open(ws).catalog.catalog_hash()

    second = run(ImportConfig(source=str(root), workspace=ws))
    assert (second.added, second.duplicates, second.already_present, len(second.unreadable)) == (0, 0, 3, 0)
    assert Workspace.open(ws).catalog.catalog_hash() == hash_before

    # The same bytes under a new path later: a new duplicate row, not silently dropped.
    (root / "a" / "3.png").write_bytes((root / "a" / "2.png").read_bytes())
    third = run(ImportConfig(source=str(root), workspace=ws))
    assert (third.added, third.duplicates, third.already_present) == (0, 1, 3)
    summary = Workspace.open(ws).catalog.summary()
    assert summary["exact_duplicates"] == 2 and summary["images"] == 4

    # A changed file at a known path is refreshed, not duplicated.
    _png(root / "a" / "2.png", 77, size=20)
    fourth = run(ImportConfig(source=str(root), workspace=ws))
    assert (fourth.updated, fourth.added) == (1, 0)
    rows = {os.path.basename(r.path): r for r in _rows(ws)}
    assert rows["2.png"].width == 20 and rows["2.png"].duplicate_of is None
    # Its former copy now stands alone as the first copy of the old bytes.
    assert rows["3.png"].duplicate_of is None
    assert rows["copy_of_1.png"].duplicate_of == rows["1.png"].id


def test_auto_splits_are_stratified_and_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for c, n in (("big", 50), ("small", 10), ("tiny", 2)):
        for i in range(n):
            _png(root / c / f"{i}.png", hash((c, i)) % 100_000)

    def splits(ws: Path, seed: int) -> dict[str, str]:
        run(ImportConfig(source=str(root), workspace=ws, seed=seed, val_fraction=0.2, test_fraction=0.1))
        return {r.sha256: r.split for r in _rows(ws)}

    a, b, c = splits(tmp_path / "a", 0), splits(tmp_path / "b", 0), splits(tmp_path / "c", 1)
    assert a == b  # same seed, same assignment
    assert a != c  # another seed, another assignment
    rows = _rows(tmp_path / "a")
    per = Counter((r.label, r.split) for r in rows)
    assert (per["big", "train"], per["big", "val"], per["big", "test"]) == (35, 10, 5)
    assert (per["small", "train"], per["small", "val"], per["small", "test"]) == (7, 2, 1)
    assert per["tiny", "train"] == 2
    assert {r.split_origin for r in rows} == {"auto"}


def test_invalid_fractions_rejected(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "1.png", 1)
    with pytest.raises(ConfigError, match="val_fraction"):
        run(ImportConfig(source=str(tmp_path / "d"), workspace=tmp_path / "ws", val_fraction=0.6, test_fraction=0.5))


def test_workspace_inside_the_imported_folder_is_left_out(tmp_path: Path) -> None:
    root = tmp_path / "project"
    _png(root / "a" / "1.png", 1)
    _png(root / "b" / "2.png", 2)
    ws = root / "picsift-workspace"
    run(ImportConfig(source=str(root / "a"), workspace=ws))  # creates the workspace and its catalog
    _png(ws / "files" / "urls" / "x.png", 3)
    result = run(ImportConfig(source=str(root), workspace=ws))
    assert result.added == 1 and result.already_present == 1
    assert {os.path.basename(r.path) for r in _rows(ws)} == {"1.png", "2.png"}
    assert result.skipped and {i.reason for i in result.skipped} == {"inside the picsift workspace"}
    assert Workspace.open(ws).catalog.classes() == ["a", "b"]


def test_manifest_listing_a_file_twice_in_two_unicode_spellings_is_one_entry(tmp_path: Path) -> None:
    """The same label written decomposed (NFD) and composed (NFC), or with spaces around it, is one label: the
    second listing is a repeat, not a conflict."""
    data = tmp_path / "data"
    _png(data / "a.png", 0)
    nfd, nfc = "cre\u0300me bru\u0302le\u0301e", "crème brûlée"
    (data / "labels.csv").write_text(f"path,label\na.png,{nfd}\na.png, {nfc} \n", encoding="utf-8")
    result = run(ImportConfig(source=str(data / "labels.csv"), workspace=tmp_path / "ws"))
    assert result.added == 1
    [row] = _rows(tmp_path / "ws")
    assert row.label == nfc
