"""Decoding edge cases through a real import: every quirk becomes a usable row or a clear reason."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import picsift.data.images as images_mod
from picsift.config import ImportConfig
from picsift.data.images import load_rgb, probe
from picsift.errors import ImageDecodeError
from picsift.ingest import ImportResult, run
from picsift.store import ImageRow, Workspace


def _rgb(w: int = 24, h: int = 16, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")


def _jpeg_with_exif(path: Path, orientation: int | None = None, **tags: object) -> None:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if "make" in tags:
        exif[0x010F] = tags["make"]
    if "model" in tags:
        exif[0x0110] = tags["model"]
    if "when" in tags:
        exif[0x0132] = tags["when"]  # DateTime
    if "gps" in tags:
        exif[0x8825] = tags["gps"]
    _rgb(40, 20).save(path, "JPEG", exif=exif)


def _import(folder: Path, ws: Path) -> tuple[ImportResult, dict[str, ImageRow]]:
    result = run(ImportConfig(source=str(folder), workspace=ws, label="x"))
    w = Workspace.open(ws)
    rows = w.catalog.images(readable=None)
    w.close()
    return result, {os.path.basename(r.path): r for r in rows}


def test_exif_orientation_swaps_width_and_height(tmp_path: Path) -> None:
    _jpeg_with_exif(tmp_path / "rotated.jpg", orientation=6)
    _jpeg_with_exif(tmp_path / "upright.jpg", orientation=1)
    info = probe(tmp_path / "rotated.jpg")
    assert (info.width, info.height) == (20, 40)
    assert load_rgb(tmp_path / "rotated.jpg").size == (20, 40)
    assert (probe(tmp_path / "upright.jpg").width, probe(tmp_path / "upright.jpg").height) == (40, 20)


def test_exif_camera_time_and_gps_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    gps = {1: "N", 2: (52.0, 30.0, 0.0), 3: "W", 4: (1.0, 15.0, 0.0)}
    _jpeg_with_exif(src / "cam.jpg", make="Canon", model="EOS 5D", when="2021:06:01 12:34:56", gps=gps)
    _, rows = _import(src, tmp_path / "ws")
    row = rows["cam.jpg"]
    assert row.exif_camera == "Canon EOS 5D"
    assert row.exif_time == "2021:06:01 12:34:56"
    assert row.gps_lat == pytest.approx(52.5)
    assert row.gps_lon == pytest.approx(-1.25)


def test_every_pixel_format_decodes_to_rgb(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    base = _rgb()
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(src / "palette.png")
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    pal.save(src / "palette_transparent.png", transparency=0)
    base.convert("CMYK").save(src / "cmyk.jpg")
    arr16 = (np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16)
    Image.fromarray(arr16).save(src / "deep16.png")
    base.convert("LA").save(src / "la.png")
    base.convert("RGBA").save(src / "rgba.png")
    base.convert("L").save(src / "gray.png")
    base.convert("1").save(src / "bilevel.bmp")
    frames = [_rgb(seed=i).convert("P") for i in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    base.save(src / "pic.webp")
    base.save(src / "pic.tiff")

    _, rows = _import(src, tmp_path / "ws")
    assert len(rows) == 11
    for name, row in rows.items():
        assert row.readable, (name, row.error)
        assert (row.width, row.height) == (24, 16), name
        rgb = load_rgb(src / name)
        assert rgb.mode == "RGB" and rgb.size == (24, 16)
    assert rows["cmyk.jpg"].mode == "CMYK"
    assert rows["deep16.png"].mode.startswith("I")
    assert probe(src / "anim.gif").n_frames == 3
    # 16-bit values are scaled, not clipped: the brightest input pixel stays the brightest.
    deep = np.asarray(load_rgb(src / "deep16.png"))[..., 0]
    assert deep.max() > 200 and deep.min() < 10
    # Transparent pixels are composited on white, not black.
    la = Image.new("LA", (4, 4), (0, 0))
    buf = io.BytesIO()
    la.save(buf, "PNG")
    assert np.asarray(load_rgb(buf.getvalue())).min() == 255


def test_broken_files_are_unreadable_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = io.BytesIO()
    _rgb(64, 64).save(good, "JPEG", quality=90)
    data = good.getvalue()
    (src / "ok.jpg").write_bytes(data)
    (src / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "random.jpg").write_bytes(np.random.default_rng(1).bytes(2048))
    (src / "notes.txt").write_text("not a picture")
    (src / "page.png").write_text("<html>oops</html>")

    result, rows = _import(src, tmp_path / "ws")
    assert result.added == 1
    reasons = {os.path.basename(i.path): i.reason for i in result.unreadable}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "random.jpg", "page.png"}
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty file" in reasons["empty.jpg"]
    assert reasons["random.jpg"].startswith("not an image")
    # Not an image by its suffix: skipped with the reason (the one folder walk), never a catalog row.
    assert [(os.path.basename(i.path), i.reason) for i in result.skipped] == [("notes.txt", "not an image file (.txt)")]
    assert "notes.txt" not in rows
    for name in reasons:
        row = rows[name]
        assert not row.readable and row.error == reasons[name]
        assert row.split is None  # never trained or tested on
    assert rows["ok.jpg"].readable


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _rgb(100, 100).save(src / "big.png")
    _rgb(8, 8).save(src / "small.png")
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 50 * 50)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        probe(src / "big.png")
    _, rows = _import(src, tmp_path / "ws")
    assert not rows["big.png"].readable and "decompression bomb" in rows["big.png"].error
    assert rows["small.png"].readable


def test_pillow_bomb_error_becomes_decode_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's own guard (raised while parsing the header) is reported the same way.
    _rgb(100, 100).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        probe(tmp_path / "big.png")
