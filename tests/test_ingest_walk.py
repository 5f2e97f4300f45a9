"""The one folder walk and the one format list, through `picsift import`: AVIF and HEIC, hidden
folders, linked sub-folders and class folders, link loops and broken links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.config import ImportConfig
from picsift.data import formats
from picsift.data.images import load_rgb, probe
from picsift.data.walk import walk_images
from picsift.errors import DatasetError
from picsift.ingest import run
from picsift.store import Workspace
from support.images import REPO, require


def _image(path: Path, seed: int, fmt: str | None = None, size: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(path, fmt)
    return path


def _labels(ws: Path) -> dict[str, str | None]:
    w = Workspace.open(ws)
    try:
        return {os.path.basename(r.path): r.label for r in w.catalog.images(readable=None, include_excluded=True)}
    finally:
        w.close()


def test_avif_single_file_import(tmp_path: Path) -> None:
    require(formats.AVIF_AVAILABLE, "this Pillow has no AVIF support")
    photo = _image(tmp_path / "photo.avif", 1, "AVIF")
    result = run(ImportConfig(source=str(photo), workspace=tmp_path / "ws", label="cat"))
    assert (result.kind, result.added, len(result.unreadable), len(result.skipped)) == ("file", 1, 0, 0)
    assert _labels(tmp_path / "ws") == {"photo.avif": "cat"}
    with pytest.raises(DatasetError, match=r"unsupported source.*AVIF"):
        run(ImportConfig(source=str(_write(tmp_path / "notes.md", b"# hi")), workspace=tmp_path / "ws"))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_listed_format_imports_in_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "data"
    names = {"a.jpg": "JPEG", "b.PNG": "PNG", "c.pgm": "PPM", "d.ppm": "PPM", "e.webp": "WEBP", "f.tif": "TIFF"}
    if formats.AVIF_AVAILABLE:
        names["g.avif"] = "AVIF"
    for i, (name, fmt) in enumerate(names.items()):
        img = _image(root / "cat" / name, i, fmt)
        if name.endswith(".pgm"):
            Image.open(img).convert("L").save(img, "PPM")
    _image(root / "cat" / ".ipynb_checkpoints" / "old.png", 99, "PNG")
    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert (result.added, len(result.unreadable)) == (len(names), 0)
    assert [(os.path.basename(i.path), i.reason) for i in result.skipped] == [("old.png", "hidden or system file")]
    assert _labels(tmp_path / "ws") == dict.fromkeys(names, "cat")


def test_linked_subfolder_and_linked_class_folder_are_imported(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    for i in range(3):
        _image(elsewhere / "cats" / f"x{i}.png", i, "PNG")
        _image(elsewhere / "birds" / f"b{i}.png", 10 + i, "PNG")
    root = tmp_path / "data"
    _image(root / "cat" / "c0.png", 20, "PNG")
    _image(root / "dog" / "d0.png", 21, "PNG")
    (root / "cat" / "extra").symlink_to(elsewhere / "cats", target_is_directory=True)
    (root / "bird").symlink_to(os.path.relpath(elsewhere / "birds", root), target_is_directory=True)
    (root / "cat" / "loop").symlink_to("..", target_is_directory=True)  # to an ancestor: never followed
    (root / "dog" / "gone.png").symlink_to(tmp_path / "missing.png")

    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert result.kind == "folder" and result.classes == ["bird", "cat", "dog"]
    assert (result.added, result.duplicates, len(result.unreadable)) == (8, 0, 0)
    labels = _labels(tmp_path / "ws")
    assert sorted(n for n, lab in labels.items() if lab == "cat") == ["c0.png", "x0.png", "x1.png", "x2.png"]
    assert sorted(n for n, lab in labels.items() if lab == "bird") == ["b0.png", "b1.png", "b2.png"]
    skipped = {os.path.basename(i.path): i.reason for i in result.skipped}
    assert set(skipped) == {"loop", "gone.png"}
    assert skipped["loop"].startswith("link loop: points to ") and str(root.resolve()) in skipped["loop"]
    assert skipped["gone.png"] == f"broken link: its target {tmp_path / 'missing.png'} does not exist"
    assert result.to_dict()["skipped_by_reason"] == {"link loop": 1, "broken link": 1}


def test_loops_are_reported_and_the_walk_ends(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _image(root / "a" / "1.png", 1, "PNG")
    (root / "a" / "up").symlink_to(root, target_is_directory=True)  # an ancestor
    (root / "a" / "top").symlink_to(tmp_path, target_is_directory=True)  # a folder holding the root
    (root / "x").symlink_to("y")  # x -> y -> x
    (root / "y").symlink_to("x")
    (root / "again").symlink_to(root / "a", target_is_directory=True)  # inside the tree: not walked twice
    found = walk_images(root)
    assert found.images == [root / "a" / "1.png"]
    why = {p.path.name: p.reason for p in found.skipped}
    assert set(why) == {"up", "top", "x", "y", "again"}
    assert all(why[n].startswith("link loop: ") for n in ("up", "top", "x", "y"))
    assert why["again"].startswith("link to a folder inside the same tree: ")

    result = run(ImportConfig(source=str(root), workspace=tmp_path / "ws"))
    assert result.added == 1 and result.to_dict()["skipped_by_reason"] == {
        "link loop": 4,
        "link to a folder inside the same tree": 1,
    }


def test_two_links_to_one_folder_walk_it_once(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _image(shared / "s.png", 1, "PNG")
    root = tmp_path / "flat"
    root.mkdir()
    (root / "one").symlink_to(shared, target_is_directory=True)
    (root / "two").symlink_to(shared, target_is_directory=True)
    found = walk_images(root)
    assert found.images == [root / "one" / "s.png"]
    assert [(s.path.name, s.reason) for s in found.skipped] == [
        ("two", f"folder already walked: the same folder as {root / 'one'}")
    ]


def test_heic_decodes_and_imports(tmp_path: Path) -> None:
    require(formats.HEIF_AVAILABLE, "pillow-heif is not installed (pip install 'picsift[heic]')")
    import pillow_heif

    pixels = np.zeros((16, 24, 3), np.uint8)
    pixels[:, :, 0] = 200
    photo = tmp_path / "data" / "IMG_0001.HEIC"
    photo.parent.mkdir()
    pillow_heif.from_pillow(Image.fromarray(pixels, "RGB")).save(photo, quality=95)
    info = probe(photo)
    assert (info.format, info.width, info.height) == ("HEIF", 24, 16)
    red = np.asarray(load_rgb(photo))[..., 0]
    assert abs(float(red.mean()) - 200) < 8
    result = run(ImportConfig(source=str(photo.parent), workspace=tmp_path / "ws", label="phone"))
    assert (result.added, len(result.unreadable), len(result.skipped)) == (1, 0, 0)


def test_heic_without_the_plugin_says_what_to_install(tmp_path: Path) -> None:
    require(formats.HEIF_AVAILABLE, "pillow-heif is needed to write the HEIC file")
    import pillow_heif

    photo = tmp_path / "IMG_0002.heic"
    pillow_heif.from_pillow(Image.new("RGB", (8, 8), (1, 2, 3))).save(photo)
    _image(tmp_path / "ok.png", 1, "PNG")
    # A fresh interpreter in which pillow-heif cannot be imported, as on a machine without the extra.
    code = f"""
import sys
sys.modules["pillow_heif"] = None
from pathlib import Path
from picsift.data.images import load_rgb
from picsift.data.walk import walk_images
from picsift.errors import DatasetError, ImageDecodeError
from picsift.ingest.sources import discover
try:
    load_rgb(Path({str(photo)!r}))
except ImageDecodeError as e:
    print("decode:", e)
found = walk_images(Path({str(tmp_path)!r}))
print("images:", [p.name for p in found.images])
print("skipped:", [(s.path.name, s.reason) for s in found.skipped])
try:
    discover(Path({str(photo)!r}), workspace_files=Path({str(tmp_path / "files")!r}))
except DatasetError as e:
    print("import:", e)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    need = formats.HEIF_MISSING
    assert need == "HEIC/HEIF needs the pillow-heif plugin: pip install 'picsift[heic]'"
    assert out.stdout.splitlines() == [
        f"decode: {need}",
        "images: ['ok.png']",
        f"skipped: [('IMG_0002.heic', {need!r})]",
        f"import: {photo}: {need}",
    ]
