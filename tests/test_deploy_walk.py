"""`picsift predict FOLDER` and the server read the same formats and walk folders as `picsift import`
does: AVIF/PGM/PPM predicted, hidden folders left out, linked folders followed, the rest reported."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.data import formats
from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings, create_app
from support.deploy import LiveServer, make_workspace, train_run
from support.images import require


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("walk")
    ws = make_workspace(root, per_class=12)
    return export(train_run(ws, "fastcnn"), root / "bundle")


@pytest.fixture(scope="module")
def digit(bundle: Path) -> Image.Image:
    return Image.open(next((bundle.parent / "images" / "1").glob("*.png"))).convert("RGB")


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    (img.convert("L") if fmt == "PGM" else img).save(buf, "PPM" if fmt in ("PGM", "PPM") else fmt)
    return buf.getvalue()


def test_predict_folder_reads_every_format_and_follows_links(bundle: Path, digit: Image.Image, tmp_path: Path) -> None:
    folder = tmp_path / "new"
    (folder / "scans").mkdir(parents=True)
    (folder / "scans" / "a.pgm").write_bytes(_encoded(digit, "PGM"))
    (folder / "scans" / "b.ppm").write_bytes(_encoded(digit, "PPM"))
    (folder / "c.PNG").write_bytes(_encoded(digit, "PNG"))
    expected = ["c.PNG", "scans/a.pgm", "scans/b.ppm"]
    if formats.AVIF_AVAILABLE:
        (folder / "d.avif").write_bytes(_encoded(digit, "AVIF"))
        expected.insert(1, "d.avif")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "c-checkpoint.png").write_bytes(_encoded(digit, "PNG"))
    (folder / "notes.txt").write_text("not a picture")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "e.bmp").write_bytes(_encoded(digit, "BMP"))
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "scans" / "loop").symlink_to(folder, target_is_directory=True)
    expected.append("linked/e.bmp")

    runner = CliRunner()
    r = runner.invoke(build_app(), ["predict", str(folder), "--bundle", str(bundle), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    preds = out["predictions"]
    assert sorted(os.path.relpath(p["path"], folder) for p in preds) == sorted(expected)
    assert all("error" not in p and p["label"] in ("0", "1", "2") for p in preds)
    skipped = {os.path.relpath(s["path"], folder): s["reason"] for s in out["skipped"]}
    assert set(skipped) == {".ipynb_checkpoints/c-checkpoint.png", "notes.txt", "scans/loop"}
    assert skipped["notes.txt"] == "not an image file (.txt)"
    assert skipped["scans/loop"].startswith("link loop: ")

    text = runner.invoke(build_app(), ["predict", str(folder), "--bundle", str(bundle)])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith(str(folder))]) == len(expected)
    assert "skipped 3 files (not predicted): hidden or system file 1, not an image file 1, link loop 1" in lines
    assert f"  {folder / 'notes.txt'}: not an image file (.txt)" in lines


def test_predict_folder_without_images_says_what_it_skipped(bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    (folder / ".hidden.png").write_bytes(b"x")
    r = CliRunner().invoke(build_app(), ["predict", str(folder), "--bundle", str(bundle)])
    assert r.exit_code == 2
    assert "holds no image files" in r.stderr and "skipped 2: hidden or system file 1, not an image file 1" in r.stderr


def test_server_accepts_every_listed_format(bundle: Path, digit: Image.Image, tmp_path: Path) -> None:
    uploads = {"x.pgm": _encoded(digit, "PGM"), "x.ppm": _encoded(digit, "PPM"), "x.tif": _encoded(digit, "TIFF")}
    if formats.AVIF_AVAILABLE:
        uploads["x.avif"] = _encoded(digit, "AVIF")
    if formats.HEIF_AVAILABLE:
        uploads["x.heic"] = _encoded(digit, "HEIF")
    settings = ServerSettings(bundle=bundle, workspace=tmp_path / "ws")
    with LiveServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        png = c.post("/v1/predict", files={"file": ("x.png", _encoded(digit, "PNG"))}).json()
        for name, data in uploads.items():
            r = c.post("/v1/predict", files={"file": (name, data)})
            assert r.status_code == 200, (name, r.text)
            assert r.json()["label"] == png["label"], name  # the same picture, lossless or nearly
        r = c.post("/v1/predict", json={"image": base64.b64encode(uploads["x.pgm"]).decode()})
        assert r.status_code == 200
        r = c.post("/v1/predict", files={"file": ("x.png", b"%PDF-1.4 not an image")})
        assert r.status_code == 415 and r.json()["error"] == "not_an_image"
        assert formats.describe() in r.json()["detail"]
        ico = io.BytesIO()
        digit.save(ico, "ICO")  # Pillow reads it, but it is not in picsift's list
        r = c.post("/v1/predict", files={"file": ("x.ico", ico.getvalue())})
        assert r.status_code == 415 and r.json()["error"] == "not_an_image"


def test_heic_upload_is_predicted(bundle: Path, digit: Image.Image, tmp_path: Path) -> None:
    require(formats.HEIF_AVAILABLE, "pillow-heif is not installed (pip install 'picsift[heic]')")
    photo = tmp_path / "IMG_0003.heic"
    photo.write_bytes(_encoded(digit, "HEIF"))
    r = CliRunner().invoke(build_app(), ["predict", str(photo), "--bundle", str(bundle), "--json"])
    assert r.exit_code == 0, r.output
    (pred,) = json.loads(r.stdout)["predictions"]
    assert "error" not in pred and pred["label"] in ("0", "1", "2")
