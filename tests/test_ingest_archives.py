"""zip and tar archives: extracted safely into the workspace, the user's archive left untouched."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.config import ImportConfig
from picsift.errors import DatasetError
from picsift.ingest import run
from picsift.ingest.archives import safe_member_path
from picsift.store import Workspace


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


MEMBERS = {
    "dataset/train/cat/1.png": _png(1),
    "dataset/train/cat/2.png": _png(2),
    "dataset/train/dog/3.png": _png(3),
    "dataset/val/cat/4.png": _png(4),
    "dataset/val/dog/5.png": _png(5),
    "dataset/val/dog/notes.txt": b"hello",
    "__MACOSX/dataset/._1.png": b"\0\0",
}


def _zip(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in {**MEMBERS, **(extra or {})}.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, extra: dict[str, bytes] | None = None, link: bool = False) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in {**MEMBERS, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("dataset/train/cat/passwd.png")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [_zip, _tar], ids=["zip", "tar.gz"])
def test_archive_import_with_traversal_member_refused(tmp_path: Path, make: object) -> None:
    suffix = ".zip" if make is _zip else ".tar.gz"
    evil = {"../../escaped.png": _png(9), "/abs/escaped2.png": _png(10)}
    archive = make(tmp_path / f"data{suffix}", evil)  # type: ignore[operator]
    before = archive.read_bytes()
    ws = tmp_path / "ws"
    result = run(ImportConfig(source=str(archive), workspace=ws))
    assert result.kind == "archive"
    assert result.added == 5 and result.splits == {"train": 3, "val": 2}
    assert not result.unreadable
    assert [(os.path.basename(i.path), i.reason) for i in result.skipped if i.path.endswith(".txt")] == [
        ("notes.txt", "not an image file (.txt)")
    ]
    refused = [i for i in result.skipped if "!" in i.path]
    assert sorted(i.path.split("!", 1)[1] for i in refused) == ["../../escaped.png", "/abs/escaped2.png"]
    assert all("unsafe path" in i.reason for i in refused)
    assert any("__MACOSX" in i.path and i.reason == "hidden or system file" for i in result.skipped)
    assert not list(tmp_path.rglob("escaped*.png"))  # nothing written outside the extraction folder
    assert archive.read_bytes() == before

    w = Workspace.open(ws)
    rows = w.catalog.images(readable=None)
    extract_root = w.root / "files" / "archives"
    assert all(Path(r.path).is_relative_to(extract_root) for r in rows)
    assert {r.source for r in rows} == {str(archive)} and {r.source_kind for r in rows} == {"archive"}
    assert {r.label for r in rows if r.readable} == {"cat", "dog"}
    w.close()

    again = run(ImportConfig(source=str(archive), workspace=ws))
    assert (again.added, again.already_present) == (0, 5)  # notes.txt is skipped again, never recorded


def test_tar_links_are_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "links.tgz", link=True)
    result = run(ImportConfig(source=str(archive), workspace=tmp_path / "ws"))
    assert result.added == 5
    assert any(i.path.endswith("passwd.png") and i.reason == "link, not extracted" for i in result.skipped)


def test_links_and_traversal_in_any_archive_write_nothing_outside(tmp_path: Path) -> None:
    """A zip member marked as a symbolic link (its target as content), a tar hard link and symlink to a file
    outside, a tar member under a linked folder, and names climbing out: none is written, each is listed."""
    outside = tmp_path / "outside.png"
    outside.write_bytes(_png(42))
    zipped = tmp_path / "links.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for name, data in MEMBERS.items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("dataset/train/cat/link.png")
        link.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK: what `zip --symlinks` writes
        zf.writestr(link, str(outside))
        zf.writestr("dataset/train/cat/../../../../up.png", _png(43))
    tarred = tmp_path / "links.tar"
    with tarfile.open(tarred, "w") as tf:
        for name, data in MEMBERS.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, kind, target in (
            ("dataset/train/cat/hard.png", tarfile.LNKTYPE, str(outside)),
            ("dataset/train/dog/dir", tarfile.SYMTYPE, str(tmp_path)),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
        data = _png(44)
        info = tarfile.TarInfo("dataset/train/dog/dir/through-link.png")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    before = sorted(p.name for p in tmp_path.iterdir())
    for archive in (zipped, tarred):
        ws = tmp_path / f"ws-{archive.suffix[1:]}"
        result = run(ImportConfig(source=str(archive), workspace=ws))
        refused = {i.path.split("!", 1)[1]: i.reason for i in result.skipped if "!" in i.path}
        extracted = [p for p in ws.rglob("*") if p.is_file() or p.is_symlink()]
        assert not [p for p in extracted if p.is_symlink()], archive
        assert all(p.resolve().is_relative_to(ws.resolve()) for p in extracted)
        assert outside.read_bytes() == _png(42)
        if archive is zipped:
            assert refused["dataset/train/cat/link.png"] == "symbolic link, not extracted"
            assert "unsafe path" in refused["dataset/train/cat/../../../../up.png"]
            assert result.added == 5
        else:
            assert refused["dataset/train/cat/hard.png"] == "link, not extracted"
            assert refused["dataset/train/dog/dir"] == "link, not extracted"
            assert result.added == 6  # through-link.png lands in a real folder "dir" inside the extraction
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("ws-")) == before
    assert not (tmp_path / "through-link.png").exists() and not (tmp_path.parent / "up.png").exists()


def test_corrupt_archive_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DatasetError, match="not a readable zip archive"):
        run(ImportConfig(source=str(bad), workspace=tmp_path / "ws"))
    assert not (tmp_path / "ws").exists()  # a failed import creates no workspace


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a/b.png", "a/b.png"),
        ("./a//b.png", "a/b.png"),
        ("../b.png", None),
        ("a/../../b.png", None),
        ("/etc/x", None),
        ("C:/x.png", None),
        ("a\\..\\..\\x.png", None),
    ],
)
def test_safe_member_path(name: str, safe: str | None) -> None:
    got = safe_member_path(name)
    assert (str(got) if got is not None else None) == safe
